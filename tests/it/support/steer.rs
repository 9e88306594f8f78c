//! A steering fixture: six regions like the scaling guide's, and a small GeoIP CSV with
//! clients near each of them.

/// `sipsteer.yaml` with a GeoIP CSV beside it.
pub(crate) const MAIN_GEO: &str = r#"
listen: { dns: ["127.0.0.1:0"], admin: "off" }
zones: zones
geoip: { database: geo.csv }
health: { check: none }
"#;

pub(crate) const GEO_CSV: &str = "\
network,country,continent,latitude,longitude,city
# London: two neighbouring /24s with the same ranking
81.2.68.0/24,GB,EU,51.51,-0.13,London
81.2.69.0/24,GB,EU,51.51,-0.13,London
# Dublin (country listed on uk)
87.32.0.0/16,IE,EU,53.35,-6.26,Dublin
# Berlin
91.64.0.0/14,DE,EU,52.52,13.40,Berlin
# Paris: nearest is London by distance
90.0.0.0/16,FR,EU,48.86,2.35,Paris
# Brussels: nearest is Amsterdam
81.240.0.0/16,BE,EU,50.85,4.35,Brussels
# New York
24.0.0.0/16,US,NA,40.71,-74.01,New York
# Seattle
50.46.0.0/16,US,NA,47.61,-122.33,Seattle
# Tokyo
126.0.0.0/16,JP,AS,35.68,139.69,Tokyo
# Sydney
1.128.0.0/16,AU,OC,-33.87,151.21,Sydney
# Sao Paulo
177.0.0.0/16,BR,SA,-23.55,-46.63,Sao Paulo
# a country-only row (Kenya, centroid)
41.80.0.0/16,KE,AF,,,
# IPv6 London
2a00:1000::/32,GB,EU,51.51,-0.13,London
";

pub(crate) const STEER_ZONE: &str = r#"
zone: example.com
ttl: 300
soa: { primary: ns1, contact: hostmaster, serial: 1 }
ns: [ns1]
records:
  ns1: { A: 192.0.2.53 }
regions:
  uk:
    location: [51.51, -0.13]
    countries: [GB, IE]
    servers:
      lon1: { address: [192.0.2.10, "2001:db8::10"], capacity: { calls: 1000, cps: 100 } }
      lon2: { address: 192.0.2.11, weight: 50 }
      lon3: { address: 192.0.2.12, backup: true }
  de:
    location: [50.11, 8.68]
    servers:
      fra1: { address: [192.0.2.20, "2001:db8::20"] }
  ams:
    location: [52.37, 4.90]
    servers:
      ams1: { address: 192.0.2.30 }
  us-east:
    location: [39.04, -77.49]
    servers:
      iad1: { address: 192.0.2.40, transports: [udp, tcp, tls] }
  us-west:
    location: [37.34, -121.89]
    servers:
      sjc1: { address: 192.0.2.50 }
  sg:
    location: [1.35, 103.82]
    continents: [OC]
    servers:
      sin1: { address: 192.0.2.60 }
services:
  sip:
    regions: [uk, de, ams, us-east, us-west, sg]
    transports: [udp, tcp]
    failover: 2
    fallback: [us-east, uk]
    networks: { 203.0.113.0/24: de, 203.0.113.128/25: sg }
"#;
