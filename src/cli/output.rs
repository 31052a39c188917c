//! How the CLI shows numbers, times and tables; pure functions, no I/O.
//! Scripts (`tests/e2e/*.sh`) parse these formats: keep them stable.

/// `512 B`, `1.5 KiB`, ... `2.0 TiB`: one decimal above bytes.
pub fn human_bytes(bytes: u64) -> String {
    // One rendering of sizes for the console and the command line.
    wharf::ui::layout::size(bytes)
}

/// A Unix time in milliseconds as RFC 3339 (UTC, seconds); the raw number
/// when it is out of range.
pub fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// One line of the `wharf du` table (the header too): fixed-width columns.
pub fn usage_row(repository: &str, logical: &str, unique: &str) -> String {
    format!("{repository:<50} {logical:>15} {unique:>15}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 40), "5.0 TiB");
        assert_eq!(human_bytes(5000 << 40), "5000.0 TiB");
    }

    #[test]
    fn times() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20Z");
        assert_eq!(format_ms(i64::MAX), i64::MAX.to_string());
    }

    #[test]
    fn usage_columns() {
        let row = usage_row("app", "1.0 KiB", "0 B");
        assert_eq!(row.len(), 50 + 1 + 15 + 1 + 15);
        assert!(row.starts_with("app ") && row.ends_with(" 0 B"));
    }
}
