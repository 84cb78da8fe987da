//! File reader: a log file (plain or gzip), or standard input, as partition 0 with 1-based
//! line numbers as offsets. Read by one worker; the input is finite, so when it is drained
//! the source finishes and the job exits once everything is written. On a terminal it shows
//! a progress bar with lines/s and an ETA.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use dataflows::ingest::Ingest;
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};

use super::{ReadStatus, Reader};

/// The partition number file input is recorded under.
pub const FILE_PARTITION: i32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
}

pub struct FileReader {
    lines: Box<dyn BufRead>,
    line: Vec<u8>,
    line_number: i64,
    progress: Option<Progress>,
    finished: bool,
}

struct Progress {
    bar: ProgressBar,
    bytes_read: Arc<AtomicU64>,
    started: Instant,
}

/// Counts bytes as they are read from the underlying file, for the progress bar (for gzip,
/// compressed bytes, which is what the file size measures).
struct Counting<R> {
    inner: R,
    bytes: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl FileReader {
    /// Opens `path` (`-` for standard input). Gzip is detected by its magic bytes.
    pub fn open(path: &Path) -> Result<Self, FileSourceError> {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let open_err = |source| FileSourceError::Open { path: path.to_path_buf(), source };
        let (raw, total): (Box<dyn Read>, Option<u64>) = if path == Path::new("-") {
            (Box::new(io::stdin()), None)
        } else {
            let file = File::open(path).map_err(open_err)?;
            let len = file.metadata().map_err(open_err)?.len();
            (Box::new(file), Some(len))
        };
        let mut buffered = BufReader::with_capacity(1 << 20, Counting { inner: raw, bytes: Arc::clone(&bytes_read) });
        let is_gzip = buffered.fill_buf().map_err(open_err)?.starts_with(&[0x1f, 0x8b]);
        let lines: Box<dyn BufRead> =
            if is_gzip { Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(buffered))) } else { Box::new(buffered) };
        let progress = io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(len) => {
                    let bar = ProgressBar::new(len);
                    bar.set_style(
                        ProgressStyle::with_template("{bar:40.cyan/blue} {percent:>3}% {msg} eta {eta}")
                            .expect("static template"),
                    );
                    bar
                }
                None => ProgressBar::new_spinner(),
            };
            Progress { bar, bytes_read, started: Instant::now() }
        });
        Ok(FileReader { lines, line: Vec::with_capacity(4096), line_number: 0, progress, finished: false })
    }

    fn report(&self) {
        if let Some(progress) = &self.progress {
            progress.bar.set_position(progress.bytes_read.load(Ordering::Relaxed));
            let secs = progress.started.elapsed().as_secs_f64().max(1e-3);
            progress.bar.set_message(format!("{} lines, {:.0} lines/s", self.line_number, self.line_number as f64 / secs));
        }
    }
}

impl Reader for FileReader {
    fn read(&mut self, ingest: &mut Ingest, budget: usize) -> ReadStatus {
        if self.finished {
            return ReadStatus::Finished;
        }
        for _ in 0..budget {
            self.line.clear();
            match self.lines.read_until(b'\n', &mut self.line) {
                Ok(0) => {
                    self.finished = true;
                    break;
                }
                Ok(_) => {
                    self.line_number += 1;
                    ingest.ingest(FILE_PARTITION, self.line_number, &self.line);
                }
                Err(err) => {
                    // A truncated gzip member or an I/O error ends the input; what was read
                    // is kept and the error is loud.
                    tracing::error!(error = %err, line = self.line_number, "file source read failed; ending input");
                    self.finished = true;
                    break;
                }
            }
        }
        self.report();
        if self.finished {
            if let Some(progress) = &self.progress {
                progress.bar.finish();
            }
            ReadStatus::Finished
        } else {
            ReadStatus::More
        }
    }
}
