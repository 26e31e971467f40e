// The fire times of robfig/cron v3 (the parser and runner of Knative's PingSource), for
// tests/shared/test_cron_reference.py; built by tests/infra/dataplane/build.sh cronref.
module streamforge.dev/cronref

go 1.26.0

require github.com/robfig/cron/v3 v3.0.1
