//! All integration tests, as one binary: each module is one area, sharing `support`.

mod support;

mod admin_api;
mod admin_client;
mod admin_limits;
mod cli_logs;
mod config_errors;
mod dns_defences;
mod dns_dont_fragment;
mod dns_rfc;
mod dns_rfc8906;
mod dns_source_address;
mod dns_static;
mod dns_steered;
mod encrypted;
mod encrypted_limits;
mod explain_cli;
mod failover;
mod geo;
mod geo_hostile;
mod geoip_startup;
mod health_e2e;
mod health_probe;
mod health_udp_prober;
mod hostile_config;
mod layers;
mod metrics_exact;
mod multi_instance;
mod operator_errors;
mod ops_scrape;
mod reload;
mod reload_incremental;
mod shutdown;
mod sip_hostile;
mod steering;
mod tcp_limits;
