//! Logs on stderr, as text (the default) or as JSON lines (`[log] format = "json"`,
//! `CERTFLEET_LOG__FORMAT=json` or `--log-format json`). `-v` raises the default level,
//! `RUST_LOG` still wins.
//!
//! JSON lines are tracing-subscriber's own JSON format, the event's fields at the top
//! level, with the span it happened in (`span`: a request, a probe, a lease, a send) and
//! the spans around it (`spans`).

use serde::Deserialize;

/// How log lines are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message`, the event's
    /// fields, and its spans (`span`, `spans`).
    Json,
}

pub fn init(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_format_writes_one_object_per_event_with_its_fields() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(probed = 3, ok = 2, worker = "a\"b", "probe round recorded");
            let probe = tracing::info_span!("probe", address = "127.0.0.1", port = 443);
            let _inside = probe.enter();
            tracing::warn!(retry = true, "second");
        });
        let text =
            String::from_utf8(buffer.0.lock().expect("not poisoned").clone()).expect("UTF-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "probe round recorded");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["probed"], 3);
        assert_eq!(lines[0]["worker"], "a\"b");
        assert!(lines[0]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')));
        assert_eq!(lines[1]["retry"], true);
        // The span the event happened in, with its fields: which probe it was.
        assert_eq!(lines[1]["span"]["name"], "probe");
        assert_eq!(lines[1]["span"]["address"], "127.0.0.1");
        assert_eq!(lines[1]["span"]["port"], 443);
        assert_eq!(lines[1]["spans"][0]["name"], "probe");
    }

    #[test]
    fn log_format_reads_text_and_json_and_nothing_else() {
        let parse = |text: &str| toml::from_str::<crate::config::LogConfig>(text);
        assert_eq!(parse("").expect("default").format, LogFormat::Text);
        assert_eq!(
            parse("format = \"json\"").expect("json").format,
            LogFormat::Json
        );
        assert!(parse("format = \"xml\"").is_err());
    }
}
