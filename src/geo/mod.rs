//! GeoIP databases: reading, compiling into ranking blocks, and building mmdb files.
