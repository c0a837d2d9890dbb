//! Targets from arguments, a file or standard input, as a lazy stream: a million-line
//! file is never held in memory.

use std::path::Path;

use anyhow::Context;
use certfleet_prober::Target;
use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

/// A target, or a line that is not one (reported on stderr, never fatal).
pub type TargetLine = Result<Target, String>;

/// Command-line targets are validated up front: a typo there is a usage error.
pub fn from_args(args: &[String], sni: Option<&str>) -> anyhow::Result<Vec<Target>> {
    args.iter()
        .filter(|arg| arg.as_str() != "-")
        .map(|arg| {
            arg.parse::<Target>()
                .map(|target| target.with_default_sni(sni))
                .with_context(|| format!("invalid target {arg:?}"))
        })
        .collect()
}

pub async fn from_file(
    path: &Path,
    sni: Option<String>,
) -> anyhow::Result<BoxStream<'static, TargetLine>> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open target file {}", path.display()))?;
    Ok(from_reader(
        BufReader::new(file),
        path.display().to_string(),
        sni,
    ))
}

pub fn from_stdin(sni: Option<String>) -> BoxStream<'static, TargetLine> {
    from_reader(BufReader::new(tokio::io::stdin()), "stdin".into(), sni)
}

fn from_reader<R>(reader: R, source: String, sni: Option<String>) -> BoxStream<'static, TargetLine>
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    // State: the remaining lines (None after a read error) and the current line number.
    stream::unfold(
        (Some(reader.lines()), 0usize),
        move |(lines, mut number)| {
            let source = source.clone();
            let sni = sni.clone();
            async move {
                let mut lines = lines?;
                loop {
                    number += 1;
                    let line = match lines.next_line().await {
                        Ok(None) => return None,
                        Ok(Some(line)) => line,
                        Err(error) => {
                            return Some((
                                Err(format!("{source}: read error: {error}")),
                                (None, number),
                            ))
                        }
                    };
                    let line = line.split('#').next().unwrap_or("").trim();
                    if line.is_empty() {
                        continue;
                    }
                    let parsed = line
                        .parse::<Target>()
                        .map(|target| target.with_default_sni(sni.as_deref()))
                        .map_err(|error| format!("{source}:{number}: {error}"));
                    return Some((parsed, (Some(lines), number)));
                }
            }
        },
    )
    .boxed()
}
