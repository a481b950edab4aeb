#!/bin/sh
# Runs once, from /docker-entrypoint-initdb.d, when the first pod initializes the primary.
# Creates the replication role and the app's role and database. Passwords go
# through psql variables (:'name'), never through SQL text.
#
# synchronous_commit=local: no standby exists yet, so with synchronous replication
# on a normal commit here would wait forever.
#
# The passwords are read from the files the Secret is mounted as
# (REPLICATION_PASSWORD_FILE, APP_PASSWORD_FILE), never from the environment.
set -eu
export PGOPTIONS="-c synchronous_commit=local"
replication_password="$(cat "$REPLICATION_PASSWORD_FILE")"
app_password="$(cat "$APP_PASSWORD_FILE")"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v replication_password="$replication_password" \
  -v app_user="$APP_USER" -v app_password="$app_password" -v app_db="$APP_DB" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'replication_password';
CREATE ROLE :"app_user" WITH LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
SQL
# Standbys clone this file with the data directory, so they accept replication too.
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
