mod catalog;
mod database_outage;
mod helpers;
mod orders;
mod relay;
