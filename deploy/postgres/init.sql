-- One service's database and its least-privilege login role.
--
-- psql variables: db, role, password. deploy/postgres/init.sh runs this once
-- per service when the postgres container starts on an empty data volume
-- (docker-entrypoint-initdb.d); the tests run the same file with unique names
-- (e2e/tests/least_privilege.rs), so what is proven there is what runs here.
--
--   psql -v db=order_db -v role=order_service -v password=... -f init.sql
--
-- The role owns its database, so the service's own migrations create and
-- alter its tables (PostgreSQL 15: the owner of a database owns the rights of
-- `pg_database_owner`, including CREATE on schema public). It is no
-- superuser, cannot create databases or roles, and cannot connect to any
-- other service's database: CONNECT is revoked from PUBLIC. Because the
-- database exists, the service never needs its "create if missing" path
-- (common/messaging/src/db/mod.rs tries the database itself first).

\set ON_ERROR_STOP on

-- INHERIT (the default) is needed: the owner's CREATE on schema public comes
-- through the implicit membership in pg_database_owner.

CREATE ROLE :"role" WITH LOGIN PASSWORD :'password'
    NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

CREATE DATABASE :"db" OWNER :"role";

-- By default every role may connect to every database and create temporary
-- tables in it. Only the owner keeps that here.
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
