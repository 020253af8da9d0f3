-- An empty PostgreSQL for the Dagster instance: a login role and a database it owns (Dagster creates its tables on
-- first start). Run as the postgres superuser, e.g.
--   sudo -u postgres psql -v user=soil_pipeline -v pw="$DAGSTER_PG_PASSWORD" -v db=soil_pipeline -f deploy/postgres.sql
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
