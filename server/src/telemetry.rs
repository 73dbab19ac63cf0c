//! Logging setup: `tracing` with a pretty or JSON (ELK/Loki-ready) formatter.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// The HTTP layer logs a malformed request it answered with `400` (a
/// client's mistake) at ERROR; it is left out unless the filter names
/// `actix_http` itself.
fn with_quiet_http_parser(filter: &str) -> String {
    if filter.contains("actix_http") {
        filter.to_owned()
    } else {
        format!("{filter},actix_http::h1::dispatcher=off")
    }
}

/// Installs the global subscriber (binaries only; tests keep theirs). Returns
/// an error if one is installed already or the filter is invalid.
pub fn init(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(with_quiet_http_parser(filter))
        .map_err(|e| format!("log filter {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_span_events(FmtSpan::NONE)
            .try_init(),
    }
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_parser_is_quiet_unless_asked_for() {
        assert_eq!(
            with_quiet_http_parser("info"),
            "info,actix_http::h1::dispatcher=off"
        );
        assert_eq!(
            with_quiet_http_parser("actix_http=debug"),
            "actix_http=debug"
        );
        assert!(EnvFilter::try_new(with_quiet_http_parser("warn")).is_ok());
    }
}
