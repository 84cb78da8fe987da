//! File readers. The input is finite: when it is drained the source finishes and the job
//! exits once everything is written. On a terminal worker 0 shows a progress bar.
//!
//! - [`FileReader`]: a gzip file, standard input, or any file when one worker runs: partition
//!   0, offsets are 1-based line numbers.
//! - [`BlockReader`]: a plain file split between the workers so that every worker parses.
//!   The file is cut into blocks of [`BLOCK_BYTES`]; worker `i` of `n` reads blocks `i`,
//!   `i + n`, `i + 2n`, … as its own partition `i` (a line belongs to the block holding its
//!   first byte), with the byte offset of each line's start as its offset. Interleaved blocks
//!   keep the workers within a few blocks of each other in event time, so the slowest
//!   partition's watermark never lags far behind and window state stays small; disorder
//!   between blocks read by different workers is not lateness.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom};
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
        let progress = io::stderr().is_terminal().then(|| match total {
            Some(len) => Progress::bar(len, bytes_read),
            None => Progress { bar: ProgressBar::new_spinner(), bytes_read, started: Instant::now() },
        });
        Ok(FileReader { lines, line: Vec::with_capacity(4096), line_number: 0, progress, finished: false })
    }

    fn report(&self) {
        if let Some(progress) = &self.progress {
            progress.show(progress.bytes_read.load(Ordering::Relaxed), self.line_number);
        }
    }
}

impl Progress {
    /// A bar over `len` bytes with lines/s and an ETA.
    fn bar(len: u64, bytes_read: Arc<AtomicU64>) -> Progress {
        let bar = ProgressBar::new(len);
        bar.set_style(ProgressStyle::with_template("{bar:40.cyan/blue} {percent:>3}% {msg} eta {eta}").expect("static template"));
        Progress { bar, bytes_read, started: Instant::now() }
    }

    fn show(&self, position: u64, lines: i64) {
        self.bar.set_position(position);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!("{lines} lines, {:.0} lines/s", lines as f64 / secs));
    }
}

/// Reads one line (through its newline, or to the end of the input) into `line`, keeping at
/// most `keep` bytes of it: a line longer than that is still consumed whole, so a file with
/// no newline for gigabytes (a corrupt gzip member, a binary file) cannot grow memory; the
/// decoder rejects the kept prefix as `too_long`. Returns the bytes consumed.
fn read_line_bounded(input: &mut impl BufRead, line: &mut Vec<u8>, keep: usize) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match memchr::memchr(b'\n', available) {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        let room = keep.saturating_sub(line.len()).min(take);
        line.extend_from_slice(&available[..room]);
        input.consume(take);
        consumed += take;
        if done {
            return Ok(consumed);
        }
    }
}

/// Bytes per block of a file split between workers: large enough that a block boundary
/// costs nothing, small enough that the workers stay close in event time.
pub const BLOCK_BYTES: u64 = 4 << 20;

/// One worker's share of a plain file (see the module docs).
pub struct BlockReader {
    file: BufReader<File>,
    len: u64,
    partition: i32,
    /// Blocks between two of this worker's blocks.
    stride: u64,
    /// Byte offset of the next line to read.
    position: u64,
    /// Lines starting before this offset belong to the current block.
    block_end: u64,
    line: Vec<u8>,
    finished: bool,
    progress: Option<Progress>,
    lines_read: i64,
    block_bytes: u64,
}

impl BlockReader {
    /// Worker `index` of `peers` reading `path`. `None` if the file is not a plain regular
    /// file (gzip, a pipe): then one worker reads it whole with [`FileReader`].
    pub fn open(path: &Path, index: usize, peers: usize) -> Result<Option<BlockReader>, FileSourceError> {
        Self::open_with_blocks(path, index, peers, BLOCK_BYTES)
    }

    fn open_with_blocks(path: &Path, index: usize, peers: usize, block_bytes: u64) -> Result<Option<BlockReader>, FileSourceError> {
        let open_err = |source| FileSourceError::Open { path: path.to_path_buf(), source };
        if path == Path::new("-") {
            return Ok(None);
        }
        let mut file = File::open(path).map_err(open_err)?;
        let metadata = file.metadata().map_err(open_err)?;
        let mut magic = [0u8; 2];
        let gzip = file.read(&mut magic).map_err(open_err)? == 2 && magic == [0x1f, 0x8b];
        if !metadata.is_file() || gzip {
            return Ok(None);
        }
        let progress = (index == 0 && io::stderr().is_terminal()).then(|| Progress::bar(metadata.len(), Arc::new(AtomicU64::new(0))));
        let mut reader = BlockReader {
            file: BufReader::with_capacity(1 << 20, file),
            len: metadata.len(),
            partition: index as i32,
            stride: peers as u64,
            position: 0,
            block_end: 0,
            line: Vec::with_capacity(4096),
            finished: false,
            progress,
            lines_read: 0,
            block_bytes,
        };
        reader.enter_block(index as u64).map_err(open_err)?;
        Ok(Some(reader))
    }

    /// The partition this worker's share is recorded under.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Moves to the first line starting in `block`, or finishes past the end of the file.
    fn enter_block(&mut self, block: u64) -> io::Result<()> {
        let start = block * self.block_bytes;
        if start >= self.len {
            self.finished = true;
            return Ok(());
        }
        self.block_end = start + self.block_bytes;
        if start == 0 {
            self.file.seek(SeekFrom::Start(0))?;
            self.position = 0;
            return Ok(());
        }
        // The line holding the byte before the block belongs to the previous block: skip
        // through its newline (just the newline if the previous block ended on one).
        self.file.seek(SeekFrom::Start(start - 1))?;
        self.line.clear();
        let skipped = self.file.read_until(b'\n', &mut self.line)?;
        self.position = start - 1 + skipped as u64;
        if self.position >= self.block_end || skipped == 0 {
            // One line spans the whole block: the block holds no line start.
            return self.enter_block(block + self.stride);
        }
        Ok(())
    }
}

impl BlockReader {
    /// Reads this worker's next line into `self.line`; returns its byte offset, or `None` at
    /// the end of the share.
    fn next_line(&mut self, keep: usize) -> io::Result<Option<u64>> {
        loop {
            if self.finished {
                return Ok(None);
            }
            if self.position < self.block_end {
                break;
            }
            self.enter_block(self.block_end / self.block_bytes - 1 + self.stride)?;
        }
        self.line.clear();
        let offset = self.position;
        match read_line_bounded(&mut self.file, &mut self.line, keep)? {
            0 => {
                self.finished = true;
                Ok(None)
            }
            n => {
                self.position += n as u64;
                Ok(Some(offset))
            }
        }
    }
}

impl Reader for BlockReader {
    fn read(&mut self, ingest: &mut Ingest, budget: usize) -> ReadStatus {
        let keep = ingest.max_line_bytes().saturating_add(1);
        for _ in 0..budget {
            match self.next_line(keep) {
                Ok(Some(offset)) => {
                    ingest.ingest(self.partition, offset as i64, &self.line);
                    self.lines_read += 1;
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::error!(error = %err, offset = self.position, "file source read failed; ending input");
                    self.finished = true;
                    break;
                }
            }
        }
        if let Some(progress) = &self.progress {
            // Worker 0 reads about one share in `stride`: scale its position to the whole file.
            progress.show(self.position.min(self.len), self.lines_read * self.stride as i64);
            if self.finished {
                progress.bar.finish();
            }
        }
        if self.finished { ReadStatus::Finished } else { ReadStatus::More }
    }
}

impl Reader for FileReader {
    fn read(&mut self, ingest: &mut Ingest, budget: usize) -> ReadStatus {
        if self.finished {
            return ReadStatus::Finished;
        }
        let keep = ingest.max_line_bytes().saturating_add(1);
        for _ in 0..budget {
            self.line.clear();
            match read_line_bounded(&mut self.lines, &mut self.line, keep) {
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Every line of `text`, by offset, as the workers of a split read return them.
    fn split_read(text: &str, peers: usize, block_bytes: u64) -> Vec<(u64, String)> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let mut lines = Vec::new();
        for index in 0..peers {
            let mut reader = BlockReader::open_with_blocks(file.path(), index, peers, block_bytes).unwrap().expect("a plain file splits");
            while let Some(offset) = reader.next_line(usize::MAX).unwrap() {
                lines.push((offset, String::from_utf8(reader.line.clone()).unwrap()));
            }
        }
        lines.sort();
        lines
    }

    #[test]
    fn a_line_without_end_keeps_a_bounded_prefix_and_the_next_line_is_whole() {
        let mut text = vec![b'x'; 3 << 20];
        text.extend_from_slice(b"\nnext line\n");
        let mut input = std::io::BufReader::with_capacity(4096, &text[..]);
        let mut line = Vec::new();
        assert_eq!(read_line_bounded(&mut input, &mut line, 100).unwrap(), (3 << 20) + 1);
        assert_eq!(line, vec![b'x'; 100]);
        assert!(line.capacity() < 4096, "the long line was not held");
        line.clear();
        assert_eq!(read_line_bounded(&mut input, &mut line, 100).unwrap(), 10);
        assert_eq!(line, b"next line\n");
        line.clear();
        assert_eq!(read_line_bounded(&mut input, &mut line, 100).unwrap(), 0);
    }

    #[test]
    fn a_split_read_returns_every_line_once_at_its_offset() {
        // Lines of many lengths, one longer than a block, and no newline at the end.
        let mut text = String::new();
        for i in 0..300 {
            text.push_str(&"x".repeat(i * 7 % 41));
            text.push_str(&format!(" line {i}\n"));
            if i == 150 {
                text.push_str(&"y".repeat(200));
                text.push('\n');
            }
        }
        text.push_str("last line without newline");
        let mut expected = Vec::new();
        let mut offset = 0u64;
        for line in text.split_inclusive('\n') {
            expected.push((offset, line.to_string()));
            offset += line.len() as u64;
        }
        for peers in [1, 2, 3] {
            for block_bytes in [16, 64, 97, 1 << 20] {
                assert_eq!(split_read(&text, peers, block_bytes), expected, "{peers} workers, {block_bytes}-byte blocks");
            }
        }
    }
}
