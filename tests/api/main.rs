//! API, authorization and time-dependent tests against the service started
//! in-process (`spawn_app`): a test database per test on either backend, the
//! CA made once per process, a clock the tests step instead of waiting, and a
//! Rust mTLS client. What needs outside programs stays in the `e2e` suite.

mod audit_checkpoints;
mod authorization;
mod authorization_destructive;
mod browser_renewal;
mod city_roles;
mod console_city;
mod console_manager;
mod console_manager_steps;
mod cross_site;
mod delivery_log;
mod departments;
mod departures;
mod emergency;
mod erasure;
mod est;
mod expiry;
mod facility_suspension;
mod holds;
mod https_only;
mod inputs;
mod lifecycle;
mod lifetimes;
mod mdm;
mod night_call;
mod ocsp_answers;
mod onboarding;
mod pages;
mod readable;
mod relying_parties;
mod renewal;
mod retention;
mod review;
mod scep;
mod service_certs;
mod sign_in;
mod slow_clients;
mod stalls;
mod suspension_races;
mod terms;
mod time_rules;
mod unknown_certificates;
mod world;
