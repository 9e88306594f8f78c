//! Domain names as written in zone maps: `@`, relative (`www`) or absolute (`www.example.com.`).

use hickory_proto::rr::Name;

/// Parses a zone name (`example.com`, with or without the final dot).
pub(super) fn origin(s: &str) -> Result<Name, String> {
    let s = s.trim();
    if s.is_empty() || s == "." {
        return Err("zone name must not be empty or the root".into());
    }
    let mut n = Name::from_ascii(s).map_err(|e| format!("invalid zone name `{s}`: {e}"))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

/// Resolves a name relative to `origin`; `@` is the origin, a final dot makes it absolute.
pub(super) fn resolve(s: &str, origin: &Name) -> Result<Name, String> {
    let s = s.trim();
    if s == "@" {
        return Ok(origin.clone());
    }
    if s.is_empty() {
        return Err("name must not be empty".into());
    }
    let n = Name::from_ascii(s).map_err(|e| format!("invalid name `{s}`: {e}"))?;
    let n = if n.is_fqdn() {
        n
    } else {
        n.append_domain(origin)
            .map_err(|e| format!("name `{s}` is too long: {e}"))?
    };
    Ok(n.to_lowercase())
}

/// Like [`resolve`], and the result must be the origin or below it.
pub(super) fn in_zone(s: &str, origin: &Name) -> Result<Name, String> {
    let n = resolve(s, origin)?;
    if !origin.zone_of(&n) {
        return Err(format!("name `{s}` is outside the zone {origin}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves() {
        let o = origin("Example.COM").unwrap();
        assert_eq!(o.to_string(), "example.com.");
        assert_eq!(resolve("@", &o).unwrap(), o);
        assert_eq!(resolve("WWW", &o).unwrap().to_string(), "www.example.com.");
        assert_eq!(resolve("a.b.", &o).unwrap().to_string(), "a.b.");
        assert!(
            in_zone("a.b.", &o)
                .unwrap_err()
                .contains("outside the zone")
        );
        assert!(in_zone("x.example.com.", &o).is_ok());
    }
}
