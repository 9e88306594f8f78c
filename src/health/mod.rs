//! Health of SIP servers: probes, the state machine and the monitor.
