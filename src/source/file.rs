//! File readers. The input is finite: when it is drained the source finishes and the job
//! exits once everything is written. On a terminal a progress bar shows the whole input.
//!
//! [`expand`] turns `--source file:SPEC` into the files to read: comma-separated paths, each
//! a file, a directory (its files, not recursively) or a `*`/`?` pattern in the file name.
//!
//! - One file:
//!   - [`FileReader`]: a gzip file, standard input, or any file when one worker runs:
//!     partition 0, offsets are 1-based line numbers.
//! - [`BlockReader`]: a plain file split between the workers so that every worker parses.
//!   The file is cut into blocks of [`BLOCK_BYTES`]; worker `i` of `n` reads blocks `i`,
//!   `i + n`, `i + 2n`, … as its own partition `i` (a line belongs to the block holding its
//!   first byte), with the byte offset of each line's start as its offset. Interleaved blocks
//!   keep the workers within a few blocks of each other in event time, so the slowest
//!   partition's watermark never lags far behind and window state stays small; disorder
//!   between blocks read by different workers is not lateness.
//! - Several files ([`MultiFileReader`]): file `i` of the sorted list is partition `i`, read
//!   whole by worker `i mod workers`, offsets are its 1-based line numbers, so a reject's
//!   (partition, offset) is (file, line). Each file has its own watermark (disorder between
//!   files, e.g. two servers' logs, is not lateness); a worker reads whichever of its files
//!   has the lowest watermark and finishes a file's partition at its end, so a month of
//!   rotated files advances through event time together instead of file after file. A
//!   resumed file skips to its checkpoint's replay line (a file now shorter than that is
//!   skipped with an error: it is not the file that was checkpointed).

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
    #[error("cannot list {path}: {source}")]
    List { path: PathBuf, source: io::Error },
    #[error("{pattern}: no file matches")]
    NoMatch { pattern: String },
    #[error("{pattern}: `*`, `?` are supported in the file name only, not in directories")]
    PatternInDirectory { pattern: String },
    #[error("file:- (standard input) cannot be combined with files")]
    StdinWithFiles,
    #[error("file: needs a path")]
    Empty,
    #[error("{path} has {lines} lines, but its checkpoint resumes at line {resume_at}: the file changed since")]
    ShorterThanCheckpoint { path: PathBuf, lines: i64, resume_at: i64 },
}

/// The files `spec` names, sorted by path without duplicates: comma-separated items, each a
/// file, a directory (its regular files, not hidden ones, not recursively) or a path whose
/// file name has `*` (any run of characters) or `?` (one character); `-` alone is standard
/// input. An item that names nothing is an error, so a typo does not silently shrink a
/// backfill.
pub fn expand(spec: &str) -> Result<Vec<PathBuf>, FileSourceError> {
    let items: Vec<&str> = spec.split(',').map(str::trim).filter(|item| !item.is_empty()).collect();
    if items.is_empty() {
        return Err(FileSourceError::Empty);
    }
    if items.contains(&"-") {
        return if items.len() == 1 { Ok(vec![PathBuf::from("-")]) } else { Err(FileSourceError::StdinWithFiles) };
    }
    let mut files = Vec::new();
    for item in items {
        let path = Path::new(item);
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        if is_pattern(item) {
            let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if is_pattern(&dir.to_string_lossy()) {
                return Err(FileSourceError::PatternInDirectory { pattern: item.to_owned() });
            }
            let before = files.len();
            files.extend(list_files(dir)?.into_iter().filter(|file| {
                file.file_name().is_some_and(|found| wildcard_match(name.as_bytes(), found.as_encoded_bytes()))
            }));
            if files.len() == before {
                return Err(FileSourceError::NoMatch { pattern: item.to_owned() });
            }
        } else if path.is_dir() {
            let found = list_files(path)?;
            if found.is_empty() {
                return Err(FileSourceError::NoMatch { pattern: item.to_owned() });
            }
            files.extend(found);
        } else {
            // Opening it later reports a missing file with the OS error.
            files.push(path.to_path_buf());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn is_pattern(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// The regular files directly in `dir` (hidden ones skipped), unsorted.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, FileSourceError> {
    let list_err = |source| FileSourceError::List { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let entry = entry.map_err(list_err)?;
        let hidden = entry.file_name().as_encoded_bytes().starts_with(b".");
        // Follows symlinks: a link to a log file is a log file.
        if !hidden && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    Ok(files)
}

/// Whether `name` matches `pattern`, where `*` is any run of bytes and `?` one byte.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    // Greedy with one backtrack point (the last `*`): linear in practice, no recursion.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&byte) if byte == b'?' || byte == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&byte| byte == b'*')
}

/// Bytes and lines read so far by every file reader of this process, for one progress bar.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Bytes of the files as stored (compressed for gzip, which is what their sizes count).
    pub bytes: Arc<AtomicU64>,
    pub lines: AtomicU64,
}

/// Shows `counters` against `total_bytes` on a bar until `done` is set; for a terminal only.
pub fn spawn_progress(total_bytes: u64, counters: Arc<ReadCounters>, done: Arc<std::sync::atomic::AtomicBool>) -> Option<std::thread::JoinHandle<()>> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let spawned = std::thread::Builder::new().name("progress".into()).spawn(move || {
        let progress = Progress::bar(total_bytes, Arc::new(AtomicU64::new(0)));
        loop {
            let finished = done.load(Ordering::Relaxed);
            progress.show(counters.bytes.load(Ordering::Relaxed), counters.lines.load(Ordering::Relaxed) as i64);
            if finished {
                progress.bar.finish();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    });
    spawned.map_err(|err| tracing::warn!(error = %err, "no progress bar")).ok()
}

pub struct FileReader {
    lines: Box<dyn BufRead>,
    line: Vec<u8>,
    line_number: i64,
    partition: i32,
    progress: Option<Progress>,
    /// Lines counted for a shared progress bar (several files).
    shared: Option<Arc<ReadCounters>>,
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
    /// Opens `path` (`-` for standard input) as partition 0, with a bar of its own on a
    /// terminal. Gzip is detected by its magic bytes.
    pub fn open(path: &Path) -> Result<Self, FileSourceError> {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (reader, total) = Self::open_counted(path, Arc::clone(&bytes_read), 1 << 20)?;
        let progress = io::stderr().is_terminal().then(|| match total {
            Some(len) => Progress::bar(len, bytes_read),
            None => Progress { bar: ProgressBar::new_spinner(), bytes_read, started: Instant::now() },
        });
        Ok(FileReader { progress, ..reader })
    }

    /// Opens `path` as `partition`, one of several files: bytes and lines go to `counters`
    /// (one bar for all), and smaller buffers keep many open files cheap.
    pub fn open_part(path: &Path, partition: i32, counters: Arc<ReadCounters>) -> Result<Self, FileSourceError> {
        let (reader, _) = Self::open_counted(path, Arc::clone(&counters.bytes), 64 << 10)?;
        Ok(FileReader { partition, shared: Some(counters), ..reader })
    }

    /// Skips to line `line` (1-based), the replay point of a resumed file, reading through
    /// the lines before it without ingesting them.
    fn skip_to(&mut self, line: i64, path: &Path) -> Result<(), FileSourceError> {
        let read_err = |source| FileSourceError::Open { path: path.to_path_buf(), source };
        while self.line_number + 1 < line {
            self.line.clear();
            // Only the newline matters here: keep nothing of the line.
            if read_line_bounded(&mut self.lines, &mut self.line, 0).map_err(read_err)? == 0 {
                // Shorter than when its checkpoint was written: not the same file any more.
                return Err(FileSourceError::ShorterThanCheckpoint { path: path.to_path_buf(), lines: self.line_number, resume_at: line });
            }
            self.line_number += 1;
        }
        if let Some(shared) = &self.shared {
            shared.lines.fetch_add(self.line_number as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn open_counted(path: &Path, bytes_read: Arc<AtomicU64>, buffer: usize) -> Result<(Self, Option<u64>), FileSourceError> {
        let open_err = |source| FileSourceError::Open { path: path.to_path_buf(), source };
        let (raw, total): (Box<dyn Read>, Option<u64>) = if path == Path::new("-") {
            (Box::new(io::stdin()), None)
        } else {
            let file = File::open(path).map_err(open_err)?;
            let len = file.metadata().map_err(open_err)?.len();
            (Box::new(file), Some(len))
        };
        let mut buffered = BufReader::with_capacity(buffer, Counting { inner: raw, bytes: bytes_read });
        let is_gzip = buffered.fill_buf().map_err(open_err)?.starts_with(&[0x1f, 0x8b]);
        let lines: Box<dyn BufRead> =
            if is_gzip { Box::new(BufReader::with_capacity(buffer, MultiGzDecoder::new(buffered))) } else { Box::new(buffered) };
        let reader = FileReader {
            lines,
            line: Vec::with_capacity(4096),
            line_number: 0,
            partition: FILE_PARTITION,
            progress: None,
            shared: None,
            finished: false,
        };
        Ok((reader, total))
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
        let first_line = self.line_number;
        for _ in 0..budget {
            self.line.clear();
            match read_line_bounded(&mut self.lines, &mut self.line, keep) {
                Ok(0) => {
                    self.finished = true;
                    break;
                }
                Ok(_) => {
                    self.line_number += 1;
                    ingest.ingest(self.partition, self.line_number, &self.line);
                }
                Err(err) => {
                    // A truncated gzip member or an I/O error ends the input; what was read
                    // is kept and the error is loud.
                    tracing::error!(error = %err, partition = self.partition, line = self.line_number, "file source read failed; ending input");
                    self.finished = true;
                    break;
                }
            }
        }
        if let Some(shared) = &self.shared {
            shared.lines.fetch_add((self.line_number - first_line) as u64, Ordering::Relaxed);
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

/// One worker's files among several (see the module docs).
pub struct MultiFileReader {
    files: Vec<PartFile>,
    counters: Arc<ReadCounters>,
}

struct PartFile {
    path: PathBuf,
    partition: i32,
    /// The first line to read (1-based): a checkpoint's replay point; `None`: the first.
    start: Option<i64>,
    /// Opened on first read, so a worker with many files holds buffers only for those begun.
    reader: Option<FileReader>,
    finished: bool,
}

impl MultiFileReader {
    /// Reads `files` (path, partition, first line to read); every partition must be
    /// registered with the worker's `Ingest` before the first read (resumed at that line, or
    /// fresh), so an unread file holds the watermark at its start.
    pub fn new(files: Vec<(PathBuf, i32, Option<i64>)>, counters: Arc<ReadCounters>) -> MultiFileReader {
        let files = files
            .into_iter()
            .map(|(path, partition, start)| PartFile { path, partition, start, reader: None, finished: false })
            .collect();
        MultiFileReader { files, counters }
    }

    /// The unfinished file whose partition has the lowest watermark (the lowest partition
    /// first among equals): reading it is what lets the worker's watermark advance.
    fn next_file(&self, ingest: &Ingest) -> Option<usize> {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, file)| !file.finished)
            .min_by_key(|(_, file)| (ingest.clock(file.partition).map_or(0, |clock| clock.watermark), file.partition))
            .map(|(at, _)| at)
    }
}

impl Reader for MultiFileReader {
    fn read(&mut self, ingest: &mut Ingest, budget: usize) -> ReadStatus {
        let Some(at) = self.next_file(ingest) else { return ReadStatus::Finished };
        let file = &mut self.files[at];
        if file.reader.is_none() {
            let opened = FileReader::open_part(&file.path, file.partition, Arc::clone(&self.counters))
                .and_then(|mut reader| reader.skip_to(file.start.unwrap_or(1), &file.path).map(|()| reader));
            match opened {
                Ok(reader) => file.reader = Some(reader),
                Err(err) => {
                    // Listed at start but gone or unreadable now: the other files go on, loudly.
                    tracing::error!(error = %err, partition = file.partition, "file source cannot open a file; skipping it");
                    file.finished = true;
                    ingest.finish_partition(file.partition);
                    return ReadStatus::More;
                }
            }
        }
        let status = file.reader.as_mut().map_or(ReadStatus::Finished, |reader| reader.read(ingest, budget));
        if status == ReadStatus::Finished {
            tracing::debug!(partition = file.partition, path = %file.path.display(), "file read to its end");
            file.finished = true;
            // Free its buffers; its partition no longer holds the watermark back.
            file.reader = None;
            ingest.finish_partition(file.partition);
        }
        if self.files.iter().all(|file| file.finished) { ReadStatus::Finished } else { ReadStatus::More }
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
    fn wildcards_match_the_whole_name() {
        for (pattern, name, expected) in [
            ("access.log*", "access.log", true),
            ("access.log*", "access.log.3.gz", true),
            ("access.log*", "error.log", false),
            ("*.gz", "access.log.2.gz", true),
            ("*.gz", "access.log.gz.tmp", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b", "xxaxxbxxb", true),
            ("*a*b", "xxbxxa", false),
            ("*", "", true),
            ("", "x", false),
        ] {
            assert_eq!(wildcard_match(pattern.as_bytes(), name.as_bytes()), expected, "{pattern} {name}");
        }
    }

    #[test]
    fn a_spec_expands_to_sorted_files_from_paths_directories_and_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("nginx");
        std::fs::create_dir(&logs).unwrap();
        for name in ["access.log", "access.log.1", "access.log.2.gz", "error.log", ".hidden"] {
            std::fs::write(logs.join(name), "x\n").unwrap();
        }
        std::fs::create_dir(logs.join("old")).unwrap();
        let other = dir.path().join("other.log");
        std::fs::write(&other, "x\n").unwrap();
        let names = |files: Vec<PathBuf>| files.iter().map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string()).collect::<Vec<_>>();
        let logs_text = logs.display().to_string();

        // A directory: its files, not hidden ones, not subdirectories.
        assert_eq!(
            names(expand(&format!("{logs_text}/")).unwrap()),
            ["nginx/access.log", "nginx/access.log.1", "nginx/access.log.2.gz", "nginx/error.log"]
        );
        // A pattern, a plain path and a repeat, comma-separated: sorted, once each.
        let spec = format!("{}, {logs_text}/access.log*,{logs_text}/access.log", other.display());
        assert_eq!(names(expand(&spec).unwrap()), ["nginx/access.log", "nginx/access.log.1", "nginx/access.log.2.gz", "other.log"]);
        assert_eq!(expand("-").unwrap(), [PathBuf::from("-")]);

        let error = |spec: &str| expand(spec).unwrap_err().to_string();
        assert_eq!(error(&format!("{logs_text}/*.zst")), format!("{logs_text}/*.zst: no file matches"));
        assert_eq!(error(&format!("{}/n*/access.log", dir.path().display())), format!("{}/n*/access.log: `*`, `?` are supported in the file name only, not in directories", dir.path().display()));
        assert_eq!(error(&format!("-,{}", other.display())), "file:- (standard input) cannot be combined with files");
        assert_eq!(error(" , "), "file: needs a path");
        assert!(error(&format!("{}/missing/*.log", dir.path().display())).starts_with("cannot list"));
    }

    fn test_ingest() -> Ingest {
        use dataflows::clean::CleanConfig;
        use dataflows::parse::{Decoder, ParseConfig};
        use dataflows::window::WindowPolicy;
        let parse = ParseConfig { format: "combined".into(), ..ParseConfig::default() };
        let clean = CleanConfig { default_domain: Some("a.example".into()), ..CleanConfig::default() };
        Ingest::new(Decoder::new(&parse, &clean).unwrap(), WindowPolicy { tick_secs: 1, out_of_orderness_secs: 10, ..WindowPolicy::default() })
    }

    /// `lines` combined-format lines starting at `start` (Unix s), one a second.
    fn combined_lines(start: i64, lines: usize) -> String {
        (0..lines)
            .map(|i| {
                let time = dataflows::parse::time::format_time_local((start + i as i64) * 1000, 0);
                format!("192.0.2.1 - - [{time}] \"GET / HTTP/1.1\" 200 - \"-\" \"-\"\n")
            })
            .collect()
    }

    #[test]
    fn several_files_are_read_lowest_watermark_first_each_its_own_partition() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let early = dir.path().join("a.log");
        std::fs::write(&early, combined_lines(1_800_000_000, 6)).unwrap();
        // The later file is gzip, in two members (as a concatenated rotation would be).
        let late = dir.path().join("b.log.gz");
        let mut gz = Vec::new();
        for part in [combined_lines(1_800_003_600, 3), combined_lines(1_800_003_603, 3)] {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(part.as_bytes()).unwrap();
            gz.extend(encoder.finish().unwrap());
        }
        std::fs::write(&late, gz).unwrap();

        let mut ingest = test_ingest();
        ingest.add_partition(3, dataflows::window::PartitionClock::default());
        ingest.add_partition(5, dataflows::window::PartitionClock::default());
        let counters = Arc::new(ReadCounters::default());
        let mut reader = MultiFileReader::new(vec![(early, 3, None), (late, 5, None)], Arc::clone(&counters));
        let mut order = Vec::new();
        loop {
            let before = (ingest.counters().messages, ingest.clock(3).unwrap().max_event_sec, ingest.clock(5).unwrap().max_event_sec);
            let status = reader.read(&mut ingest, 2);
            let after = (ingest.counters().messages, ingest.clock(3).unwrap().max_event_sec, ingest.clock(5).unwrap().max_event_sec);
            if after.1 != before.1 {
                order.push(3);
            }
            if after.2 != before.2 {
                order.push(5);
            }
            if status == ReadStatus::Finished {
                break;
            }
        }
        // Both files start (an unread file holds the watermark at 0), then the early file is
        // read to its end before the later one goes on.
        assert_eq!(order, [3, 5, 3, 3, 5, 5]);
        assert_eq!(ingest.counters().accepted, 12, "{:?}", ingest.counters().rejected);
        assert_eq!(counters.lines.load(Ordering::Relaxed), 12);
        assert_eq!(ingest.watermark(), None, "every file finished");
    }

    #[test]
    fn a_resumed_file_starts_at_its_replay_line_and_a_shorter_one_is_skipped_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, combined_lines(1_800_000_000, 6).as_bytes()).unwrap();
        std::fs::write(&path, encoder.finish().unwrap()).unwrap();
        let short = dir.path().join("b.log");
        std::fs::write(&short, combined_lines(1_800_000_000, 2)).unwrap();

        let mut ingest = test_ingest();
        ingest.add_partition(0, dataflows::window::PartitionClock::default());
        ingest.add_partition(1, dataflows::window::PartitionClock::default());
        let counters = Arc::new(ReadCounters::default());
        let mut reader = MultiFileReader::new(vec![(path, 0, Some(4)), (short, 1, Some(5))], Arc::clone(&counters));
        while reader.read(&mut ingest, 100) != ReadStatus::Finished {}
        // Lines 4 to 6 of the first file; nothing of the second, which has only 2 lines.
        assert_eq!(ingest.counters().messages, 3);
        assert_eq!(ingest.clock(0).unwrap().max_event_sec, Some(1_800_000_005));
        assert_eq!(ingest.clock(1).unwrap().max_event_sec, None);
        assert_eq!(ingest.watermark(), None);
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
