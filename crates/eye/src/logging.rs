//! Logging: `tracing` to stdout for the servers, to stderr for the other commands,
//! human-readable or one JSON object a line (`EYE_LOG_FORMAT`), filtered by `EYE_LOG`.

/// Servers log at `info` to stdout, where a container runtime or a service manager
/// collects it; other commands log warnings only, to stderr, because their stdout is
/// their answer (`TOKEN=$(eye app create web)`).
pub fn init(server: bool) {
    let default = if server { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EYE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: escape codes in a log file or a
    // collector's pipe are noise (and cost ~1,000 instructions per request's span).
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let colour = colour && (!server || std::io::stdout().is_terminal());
    let writer = if server {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stdout)
    } else {
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(writer);
    // Human-readable by default; one JSON object per line for log collectors.
    match std::env::var("EYE_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().with_current_span(true).init(),
        Ok("human") | Err(_) => builder.init(),
        Ok(other) => {
            builder.init();
            tracing::warn!(
                format = other,
                "EYE_LOG_FORMAT must be human or json; using human"
            );
        }
    }
}
