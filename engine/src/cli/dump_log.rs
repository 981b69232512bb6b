//! `weir dump-log`: prints segment (`.log`), offset index (`.index`), time index
//! (`.timeindex`), producer snapshot (`.snapshot`) and transaction index (`.txnindex`)
//! files exactly as `kafka-dump-log.sh` (`kafka.tools.DumpLogSegments`) prints them.
//! Offline: it reads files, never a broker, and never writes.
//!
//! ```text
//!  --files a.log,a.index,...  ─► per file: "Dumping <file>" ─► by suffix:
//!     .log        batches from position 0 (FileLogInputStream's rules) ─► batch lines,
//!                 with --deep-iteration/--print-data-log one "| offset: ..." line per record
//!     .index      "offset: N position: P", each checked against the batch at P
//!     .timeindex  "timestamp: T offset: N", each checked against the batch holding N
//!     .snapshot   one line per producer;  .txnindex  one line per aborted transaction
//!  at the end, on stderr: index mismatches, time index problems, non-consecutive offsets
//! ```
//!
//! Parsing reuses the storage crate (batch header view, record walk, bounded
//! decompression, index entry and snapshot decoding); nothing here re-implements the
//! formats. Exit code: 0 when every file could be read to its end the way Kafka reads
//! it (a CRC mismatch is `isvalid: false`, a torn tail is "Found N invalid bytes at the
//! end", and Kafka finishes with 0 for both); 1 where Kafka's tool dies with an
//! exception (unreadable file, batch length below the minimum, records that do not
//! parse, an index failing `--index-sanity-check`); 2 on a usage error.

mod index;
mod offsets;
mod segment;
mod snapshot;

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Kafka's default `--max-message-size`: how far past an index entry's position the
/// batch it names is looked for.
pub const MAX_MESSAGE_SIZE_DEFAULT: i32 = 5 * 1024 * 1024;

const AFTER_HELP: &str = "Examples:
  weir dump-log --files /var/lib/weir/orders-0/00000000000000000000.log
  weir dump-log --files 00000000000000000000.log --print-data-log
  weir dump-log --files 00000000000000000000.index,00000000000000000000.timeindex
  weir dump-log --files 00000000000000000000.index --index-sanity-check
  weir dump-log --files __consumer_offsets-7/00000000000000000000.log --offsets-decoder
  weir dump-log --files 00000000000000004711.snapshot

Exit codes: 0 the files were read to their end (problems Kafka reports and carries on
from, such as isvalid: false or invalid bytes at the end, are printed), 1 a file could
not be read or holds data Kafka's tool stops at, 2 usage error.";

/// Print segment, index and time index files (kafka-dump-log.sh).
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The comma-separated list of data and index files to dump.
    #[arg(
        long,
        value_name = "FILE,FILE...",
        value_delimiter = ',',
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// Print the content (key and payload) of every record; implies --deep-iteration.
    #[arg(long)]
    pub print_data_log: bool,
    /// Print every record, not just every batch.
    #[arg(long)]
    pub deep_iteration: bool,
    /// Only run the check the broker runs at start-up on index files.
    #[arg(long)]
    pub index_sanity_check: bool,
    /// Check index entries against the log without printing them.
    #[arg(long)]
    pub verify_index_only: bool,
    /// Read at most this many bytes of each .log file.
    #[arg(long, value_name = "BYTES", default_value_t = i32::MAX)]
    pub max_bytes: i32,
    /// Largest batch expected when following an index entry into the log.
    #[arg(long, value_name = "BYTES", default_value_t = MAX_MESSAGE_SIZE_DEFAULT)]
    pub max_message_size: i32,
    /// Decode records as __consumer_offsets keys and values (JSON); implies --print-data-log.
    #[arg(long)]
    pub offsets_decoder: bool,
    /// Print only the key and payload of each record.
    #[arg(long)]
    pub skip_record_metadata: bool,
}

/// What to print, derived from the flags as Kafka derives it.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub print_data: bool,
    pub deep_iteration: bool,
    pub verify_only: bool,
    pub index_sanity_only: bool,
    pub max_bytes: i32,
    pub max_message_size: i32,
    pub offsets_decoder: bool,
    pub skip_record_metadata: bool,
}

impl Options {
    fn from_args(args: &Args) -> Self {
        let print_data = args.print_data_log || args.offsets_decoder;
        Options {
            print_data,
            deep_iteration: args.deep_iteration || print_data,
            verify_only: args.verify_index_only,
            index_sanity_only: args.index_sanity_check,
            max_bytes: args.max_bytes,
            max_message_size: args.max_message_size,
            offsets_decoder: args.offsets_decoder,
            skip_record_metadata: args.skip_record_metadata,
        }
    }
}

/// Problems collected across files and printed at the end, as Kafka does. Keys are
/// absolute paths; pairs are kept in Kafka's printing order.
#[derive(Debug, Default)]
pub struct Report {
    /// (index offset, offset of the batch found there); newest first, as Kafka prepends.
    pub index_mismatches: BTreeMap<String, Vec<(i64, i64)>>,
    /// (index timestamp, largest record timestamp of the batch).
    pub time_mismatches: BTreeMap<String, Vec<(i64, i64)>>,
    /// (index timestamp, previous index timestamp).
    pub time_out_of_order: BTreeMap<String, Vec<(i64, i64)>>,
    /// (indexed offset, last offset of the batch found, −1 if none).
    pub time_offsets_not_found: BTreeMap<String, Vec<(i64, i64)>>,
    /// (offset, next offset) pairs that are not consecutive; newest first.
    pub non_consecutive: BTreeMap<String, Vec<(i64, i64)>>,
    /// A problem Kafka's tool would have stopped with; the exit code becomes 1.
    pub failed: bool,
}

impl Report {
    /// Prints a problem with one file on stderr (after what `out` holds so far, so the
    /// two streams read in order on a terminal) and remembers the failure.
    pub fn fail(&mut self, out: &mut dyn Write, message: impl std::fmt::Display) {
        let _ = out.flush();
        eprintln!("Error: {message}");
        self.failed = true;
    }

    fn print(&self) {
        let mut text = String::new();
        for (file, mismatches) in &self.index_mismatches {
            text.push_str(&format!("Mismatches in :{file}\n"));
            for (index_offset, log_offset) in mismatches {
                text.push_str(&format!(
                    "  Index offset: {index_offset}, log offset: {log_offset}\n"
                ));
            }
        }
        for (file, mismatches) in &self.time_mismatches {
            text.push_str(&format!("Found timestamp mismatch in :{file}\n"));
            for (index_timestamp, log_timestamp) in mismatches {
                text.push_str(&format!(
                    "  Index timestamp: {index_timestamp}, log timestamp: {log_timestamp}\n"
                ));
            }
        }
        for (file, pairs) in &self.time_out_of_order {
            text.push_str(&format!("Found out of order timestamp in :{file}\n"));
            for (index_timestamp, previous) in pairs {
                text.push_str(&format!(
                    "  Index timestamp: {index_timestamp}, Previously indexed timestamp: {previous}\n"
                ));
            }
        }
        for pairs in self.time_offsets_not_found.values() {
            text.push_str("The following indexed offsets are not found in the log.\n");
            for (indexed, found) in pairs {
                text.push_str(&format!(
                    "Indexed offset: {indexed}, found log offset: {found}\n"
                ));
            }
        }
        for (file, pairs) in &self.non_consecutive {
            text.push_str(&format!("Non-consecutive offsets in {file}\n"));
            for (first, second) in pairs {
                text.push_str(&format!("  {first} is followed by {second}\n"));
            }
        }
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// The absolute form of `path` (Kafka names files by `getAbsolutePath` in its reports).
pub fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// The base offset a segment file is named after (`00000000000000004711.index` → 4711).
pub fn base_offset_of(path: &Path) -> Result<i64, String> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    stem.parse().map_err(|_| {
        format!(
            "{} is not named after a base offset (expected a name like 00000000000000000000{})",
            path.display(),
            name.find('.').map_or("", |at| &name[at..])
        )
    })
}

/// The base offset `path` is named after; `None` (after reporting why) if its name has none.
pub fn base_offset_or_report(path: &Path, out: &mut dyn Write, report: &mut Report) -> Option<i64> {
    match base_offset_of(path) {
        Ok(base_offset) => Some(base_offset),
        Err(message) => {
            report.fail(out, message);
            None
        }
    }
}

/// Reads `path` whole unless it holds more than `bytes_max` bytes (`too_large` says why such
/// a size is refused); `None` (after reporting why) if it cannot be read.
pub fn read_whole_or_report(
    path: &Path,
    bytes_max: u64,
    too_large: fn(u64) -> String,
    out: &mut dyn Write,
    report: &mut Report,
) -> Option<Vec<u8>> {
    let result = std::fs::metadata(path).and_then(|metadata| {
        if metadata.len() > bytes_max {
            return Err(std::io::Error::other(too_large(metadata.len())));
        }
        std::fs::read(path)
    });
    match result {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            report.fail(out, format!("cannot read {}: {error}", path.display()));
            None
        }
    }
}

/// The sibling of a segment file with another suffix (`…0.index` → `…0.log`).
pub fn sibling(path: &Path, extension: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let stem = name.split('.').next().unwrap_or_default();
    path.with_file_name(format!("{stem}.{extension}"))
}

pub fn run(args: Args) -> ExitCode {
    let options = Options::from_args(&args);
    let mut report = Report::default();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut written = Ok(());
    for file in &args.files {
        written = dump_file(file, &options, &mut out, &mut report).and_then(|()| out.flush());
        if written.is_err() {
            break;
        }
    }
    let _ = out.flush();
    drop(out);
    report.print();
    match written {
        // A reader that went away (`| head`) is not a failure of the dump.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(error) => crate::cli::fail(format!("cannot write the output: {error}")),
        Ok(()) if report.failed => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
    }
}

/// Dumps one file by its suffix; problems with the file go to `report`, only output
/// errors are returned.
fn dump_file(
    path: &Path,
    options: &Options,
    out: &mut dyn Write,
    report: &mut Report,
) -> std::io::Result<()> {
    writeln!(out, "Dumping {}", path.display())?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_string())
        .unwrap_or_default();
    let suffix = name.rfind('.').map_or("", |at| &name[at..]);
    match suffix {
        ".log" => segment::dump_log(path, options, out, report),
        ".index" => index::dump_offset_index(path, options, out, report),
        ".timeindex" => index::dump_time_index(path, options, out, report),
        ".snapshot" => snapshot::dump_producer_snapshot(path, out, report),
        ".txnindex" => snapshot::dump_transaction_index(path, out, report),
        _ => {
            out.flush()?;
            eprintln!("Ignoring unknown file {}", path.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_file_names_give_base_offsets_and_siblings() {
        let path = Path::new("/data/t-0/00000000000000004711.timeindex");
        assert_eq!(base_offset_of(path), Ok(4711));
        assert_eq!(
            sibling(path, "log"),
            PathBuf::from("/data/t-0/00000000000000004711.log")
        );
        assert!(base_offset_of(Path::new("/data/t-0/leader.index")).is_err());
    }

    #[test]
    fn print_data_log_and_the_offsets_decoder_imply_deep_iteration() {
        let args = Args {
            files: vec![PathBuf::from("a.log")],
            print_data_log: false,
            deep_iteration: false,
            index_sanity_check: false,
            verify_index_only: false,
            max_bytes: i32::MAX,
            max_message_size: MAX_MESSAGE_SIZE_DEFAULT,
            offsets_decoder: true,
            skip_record_metadata: false,
        };
        let options = Options::from_args(&args);
        assert!(options.print_data && options.deep_iteration);
    }
}
