-- One database per service. Runs once, when the postgres container starts on
-- an empty data volume (docker-entrypoint-initdb.d). The services also create
-- their database if it is missing and run their own migrations at start, so
-- this only makes the layout visible and the first start quicker.
CREATE DATABASE order_db;
CREATE DATABASE payment_db;
CREATE DATABASE email_db;
