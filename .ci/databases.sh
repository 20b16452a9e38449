#!/usr/bin/env bash
# MariaDB and PostgreSQL from Debian for the database tests: installed when
# missing, started when down, users and databases created. Idempotent, so
# .ci/run and a developer can run it any number of times (as root).
set -euo pipefail
NEED=""
[ -x /usr/sbin/mariadbd ] || NEED="$NEED mariadb-server"
command -v pg_ctlcluster >/dev/null 2>&1 || NEED="$NEED postgresql"
if [ -n "$NEED" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 $NEED >/dev/null
fi

# MariaDB: the stock Kamailio account (mysql://kamailio:kamailiorw@localhost/kamailio) and the tests' own
if ! mysqladmin ping >/dev/null 2>&1; then
  service mariadb start >/dev/null
fi
for i in $(seq 1 30); do mysqladmin ping >/dev/null 2>&1 && break; sleep 1; done
mysql -u root <<'SQL'
CREATE DATABASE IF NOT EXISTS kamailio;
CREATE DATABASE IF NOT EXISTS switchyard_test;
CREATE USER IF NOT EXISTS 'kamailio'@'localhost' IDENTIFIED BY 'kamailiorw';
CREATE USER IF NOT EXISTS 'kamailio'@'127.0.0.1' IDENTIFIED BY 'kamailiorw';
CREATE USER IF NOT EXISTS 'switchyard'@'localhost' IDENTIFIED BY 'switchyard';
CREATE USER IF NOT EXISTS 'switchyard'@'127.0.0.1' IDENTIFIED BY 'switchyard';
GRANT ALL ON kamailio.* TO 'kamailio'@'localhost';
GRANT ALL ON kamailio.* TO 'kamailio'@'127.0.0.1';
-- each test run makes its own switchyard_t… databases, so runs side by side do not meet
GRANT ALL ON `switchyard\_%`.* TO 'switchyard'@'localhost';
GRANT ALL ON `switchyard\_%`.* TO 'switchyard'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

# PostgreSQL: the first cluster Debian made
if ! pg_isready -q -h 127.0.0.1; then
  read -r VER NAME _ < <(pg_lsclusters -h | head -1)
  pg_ctlcluster "$VER" "$NAME" start
fi
for i in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
psql_root() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtA $*"; }
[ "$(psql_root "-c \"SELECT 1 FROM pg_roles WHERE rolname = 'switchyard'\"")" = "1" ] || psql_root "-c \"CREATE ROLE switchyard LOGIN PASSWORD 'switchyard'\""
psql_root "-c \"ALTER ROLE switchyard CREATEDB\""
# DROP DATABASE … WITH (FORCE) in the tests ends the sessions still on a test
# database; an autovacuum worker among them is nobody's, so without
# pg_signal_backend the drop fails with "must be a member of the role whose
# process is being terminated"
psql_root "-c \"GRANT pg_signal_backend TO switchyard\""
[ "$(psql_root "-c \"SELECT 1 FROM pg_database WHERE datname = 'switchyard_test'\"")" = "1" ] || psql_root "-c \"CREATE DATABASE switchyard_test OWNER switchyard\""
echo "databases: MariaDB and PostgreSQL up (switchyard_test)"
