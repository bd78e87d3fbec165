//! The top scores on disk, for the standalone mode.
//!
//! Why: the standalone mode keeps everything in memory, so without this a
//! restart loses the hall of fame, which the original kept in a file. A
//! cluster keeps its top scores in Redis and does not use this.
//!
//! The file is `top-scores.json` in the data directory, a small versioned
//! document, best first:
//! `{"version": 1, "scores": [{"name": "ann", "score": 42, "colour": 3}]}`.
//!
//! - Loading trusts nothing: a missing file is an empty list; a file that is
//!   not such a document (corrupt, unreadable, too large, another version)
//!   is logged with its path and the reason, moved aside to
//!   `top-scores.json.corrupt-<unix seconds>` so that nothing overwrites it,
//!   and the game starts with an empty list. Entries the protocol would not
//!   allow (names of 1 to 15 characters without control characters, colours
//!   1 to 6, scores 1 to 2^53 - 1) are dropped with a log line, and only the
//!   best `keep` are kept.
//! - The keeper (`score_keeper.rs`) seeds the in-memory backend from the
//!   file and saves the best `keep` whenever they change.
//! - A save is atomic: a temporary file in the same directory, flushed to
//!   disk, renamed over the old one (then the directory is flushed, on
//!   Unix). A failing save (read-only disk, disk full) is logged and the
//!   game goes on; the next change tries again. File I/O runs on tokio's
//!   blocking threads.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use snakepit_bus::ScoreEntry;
use snakepit_game::settings::COLOURS;
use snakepit_protocol::client::validate_name;
use tracing::{debug, error, info, warn};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "top-scores.json";
/// The version this build reads and writes.
pub const VERSION: u64 = 1;
/// A larger file is refused unread: the best 100 entries take a few KiB.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The largest score accepted from a file: clients read numbers as
/// JavaScript doubles, exact up to 2^53 - 1.
pub const MAX_SCORE: u64 = (1 << 53) - 1;
/// How many reasons for dropped entries a load reports (the rest are counted).
const REASONS_SHOWN: usize = 5;

/// Why a file's contents cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("cannot read it: {0}")]
    Read(String),
    #[error("it is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge,
    #[error("it is not valid JSON: {0}")]
    Json(String),
    #[error("it is not a top scores document (expected {{\"version\": 1, \"scores\": [...]}})")]
    Shape,
    #[error("its version {0} is not one this build reads (1)")]
    Version(String),
}

/// The usable entries of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// At most `keep`, best first (ties by name), one per name.
    pub scores: Vec<ScoreEntry>,
    /// Entries left out: invalid, or beyond the best `keep`.
    pub dropped: usize,
    /// Why, for the first few.
    pub reasons: Vec<String>,
}

/// What loading found.
#[derive(Debug)]
pub enum Loaded {
    /// No file yet: an empty list.
    Missing,
    Read(Parsed),
    /// The file could not be used; it was renamed to `kept`, and the list
    /// starts empty.
    SetAside {
        why: Unusable,
        kept: PathBuf,
    },
    /// The file could not be used, nor moved aside: the list starts empty
    /// and nothing is saved this run, so that it is not overwritten.
    Stuck {
        why: Unusable,
        error: String,
    },
}

impl Loaded {
    /// The scores to start with.
    pub fn scores(&self) -> &[ScoreEntry] {
        match self {
            Self::Read(p) => &p.scores,
            _ => &[],
        }
    }
}

/// One entry as written in the file (its own type: the file format must
/// not change when the bus's `ScoreEntry` does).
#[derive(Serialize, Deserialize)]
struct Entry {
    name: String,
    score: u64,
    colour: u8,
}

#[derive(Serialize)]
struct Document<'a> {
    version: u64,
    scores: Vec<EntryRef<'a>>,
}

#[derive(Serialize)]
struct EntryRef<'a> {
    name: &'a str,
    score: u64,
    colour: u8,
}

/// Parses a file's bytes, keeping the best `keep` valid entries.
pub fn parse(bytes: &[u8], keep: usize) -> Result<Parsed, Unusable> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| Unusable::Json(e.to_string()))?;
    let Value::Object(doc) = doc else { return Err(Unusable::Shape) };
    match doc.get("version") {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => return Err(Unusable::Version(v.to_string())),
        None => return Err(Unusable::Shape),
    }
    let Some(Value::Array(items)) = doc.get("scores") else { return Err(Unusable::Shape) };
    let mut dropped = 0;
    let mut reasons = Vec::new();
    let mut best: HashMap<String, ScoreEntry> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        match entry(item) {
            Ok(e) => {
                if best.get(&e.name).is_none_or(|b| b.score < e.score) {
                    best.insert(e.name.clone(), e);
                }
            }
            Err(why) => {
                dropped += 1;
                if reasons.len() < REASONS_SHOWN {
                    reasons.push(format!("entry {i}: {why}"));
                }
            }
        }
    }
    let mut scores: Vec<ScoreEntry> = best.into_values().collect();
    scores.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    if scores.len() > keep {
        let beyond = scores.len() - keep;
        dropped += beyond;
        reasons.push(format!("{beyond} beyond the best {keep}"));
        scores.truncate(keep);
    }
    Ok(Parsed { scores, dropped, reasons })
}

/// One entry, if the game could have made it.
fn entry(item: &Value) -> Result<ScoreEntry, String> {
    let e = Entry::deserialize(item).map_err(|e| e.to_string())?;
    match validate_name(&e.name) {
        Ok(name) if name == e.name => {}
        Ok(_) => return Err("name has surrounding spaces".into()),
        Err(why) => return Err(why.to_string()),
    }
    if !(1..=MAX_SCORE).contains(&e.score) {
        return Err(format!("score {} is not between 1 and {MAX_SCORE}", e.score));
    }
    if !(1..=COLOURS).contains(&e.colour) {
        return Err(format!("colour {} is not between 1 and {COLOURS}", e.colour));
    }
    Ok(ScoreEntry { name: e.name, score: e.score, colour: e.colour })
}

/// The file's bytes for `scores` (best first, as given).
pub fn encode(scores: &[ScoreEntry]) -> Vec<u8> {
    let doc = Document {
        version: VERSION,
        scores: scores.iter().map(|s| EntryRef { name: &s.name, score: s.score, colour: s.colour }).collect(),
    };
    // Serialising plain strings and numbers cannot fail.
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// `top-scores.json` in a data directory, and how many entries it keeps.
#[derive(Clone, Debug)]
pub struct ScoreFile {
    path: PathBuf,
    pub(crate) keep: usize,
}

impl ScoreFile {
    pub fn new(dir: &Path, keep: usize) -> Self {
        Self { path: dir.join(FILE_NAME), keep }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Reads the file (blocking), logging what it found; see [`Loaded`].
    pub fn load(&self) -> Loaded {
        let path = self.path.display();
        let why = match self.read() {
            Ok(None) => {
                info!(path = %path, "no top scores file yet: the top scores start empty");
                return Loaded::Missing;
            }
            Ok(Some(bytes)) => match parse(&bytes, self.keep) {
                Ok(parsed) => {
                    info!(path = %path, scores = parsed.scores.len(), "top scores loaded");
                    if parsed.dropped > 0 {
                        warn!(
                            path = %path,
                            dropped = parsed.dropped,
                            reasons = %parsed.reasons.join("; "),
                            "top scores file: entries left out"
                        );
                    }
                    return Loaded::Read(parsed);
                }
                Err(why) => why,
            },
            Err(why) => why,
        };
        match self.set_aside() {
            Ok(kept) => {
                error!(
                    path = %path,
                    reason = %why,
                    kept = %kept.display(),
                    "top scores file unusable: moved aside, the top scores start empty"
                );
                Loaded::SetAside { why, kept }
            }
            Err(e) => {
                error!(
                    path = %path,
                    reason = %why,
                    error = %e,
                    "top scores file unusable, and it cannot be moved aside: the top scores start empty \
                     and are not saved this run, so that it is not overwritten"
                );
                Loaded::Stuck { why, error: e.to_string() }
            }
        }
    }

    /// The file's bytes; none if it does not exist.
    fn read(&self) -> Result<Option<Vec<u8>>, Unusable> {
        // A FIFO or a device would block the open or the read for ever.
        match fs::metadata(&self.path) {
            Ok(m) if !m.is_file() => return Err(Unusable::Read("not a regular file".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        let file = match fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Unusable::Read(e.to_string())),
        };
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Unusable::Read(e.to_string()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Unusable::TooLarge);
        }
        Ok(Some(bytes))
    }

    /// Renames the file to a name not taken yet; that name.
    fn set_aside(&self) -> io::Result<PathBuf> {
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let base = format!("{FILE_NAME}.corrupt-{secs}");
        let kept = (0..100)
            .map(|i| self.dir().join(if i == 0 { base.clone() } else { format!("{base}-{i}") }))
            .find(|p| fs::symlink_metadata(p).is_err())
            .ok_or_else(|| io::Error::new(io::ErrorKind::AlreadyExists, "no free name to move it to"))?;
        fs::rename(&self.path, &kept)?;
        Ok(kept)
    }

    /// Writes `scores` atomically (blocking), creating the directory if
    /// needed: a temporary file beside the target, flushed to disk, then
    /// renamed over it. On an error the old file is untouched and no
    /// temporary file is left.
    pub fn save(&self, scores: &[ScoreEntry]) -> io::Result<()> {
        let dir = self.dir();
        fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&encode(scores))?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &self.path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        sync_dir(dir);
        Ok(())
    }
}

/// Flushes a directory's entries (the rename) to disk where the platform
/// allows opening a directory; best effort, the rename is done either way.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
        debug!(dir = %dir.display(), error = %e, "cannot flush the data directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn e(name: &str, score: u64, colour: u8) -> ScoreEntry {
        ScoreEntry { name: name.into(), score, colour }
    }

    fn doc(scores: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"version": 1, "scores": scores})).unwrap()
    }

    pub(crate) fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|d| d.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn a_save_loads_back_the_same_scores() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        let scores = vec![e("ann", 42, 3), e("bob", 7, 1), e("\u{1F40D} snake", 7, 6)];
        file.save(&scores).unwrap();
        let Loaded::Read(parsed) = file.load() else { panic!("not read") };
        assert_eq!(parsed.scores, vec![e("ann", 42, 3), e("bob", 7, 1), e("\u{1F40D} snake", 7, 6)]);
        assert_eq!(parsed.dropped, 0);
    }

    #[test]
    fn the_file_is_a_versioned_document() {
        let text = String::from_utf8(encode(&[e("ann", 42, 3)])).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v, serde_json::json!({"version": 1, "scores": [{"name": "ann", "score": 42, "colour": 3}]}));
    }

    #[test]
    fn a_save_leaves_no_temporary_file_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        file.save(&[e("ann", 1, 1)]).unwrap();
        file.save(&[e("ann", 2, 1)]).unwrap();
        assert_eq!(files_in(dir.path()), vec![FILE_NAME]);
        assert_eq!(file.load().scores(), &[e("ann", 2, 1)]);
    }

    #[test]
    fn a_save_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(&dir.path().join("a").join("b"), 15);
        file.save(&[e("ann", 1, 1)]).unwrap();
        assert_eq!(file.load().scores(), &[e("ann", 1, 1)]);
    }

    #[test]
    fn a_missing_file_is_an_empty_list_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        assert!(matches!(file.load(), Loaded::Missing));
        assert!(files_in(dir.path()).is_empty());
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        fs::write(file.path(), b"{\"version\": 1, \"scores\": [{\"name\": \"ann\"").unwrap();
        let Loaded::SetAside { why: Unusable::Json(_), kept } = file.load() else { panic!("not set aside") };
        assert!(!file.path().exists());
        assert_eq!(fs::read(&kept).unwrap(), b"{\"version\": 1, \"scores\": [{\"name\": \"ann\"");
        assert!(kept.file_name().unwrap().to_string_lossy().starts_with("top-scores.json.corrupt-"));
        // A second corrupt file the same second goes beside the first.
        fs::write(file.path(), b"garbage").unwrap();
        let Loaded::SetAside { kept: second, .. } = file.load() else { panic!("not set aside") };
        assert_ne!(second, kept);
        assert_eq!(fs::read(&kept).unwrap(), b"{\"version\": 1, \"scores\": [{\"name\": \"ann\"");
        assert_eq!(fs::read(&second).unwrap(), b"garbage");
    }

    #[test]
    fn a_file_that_cannot_be_read_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        // A directory where the file should be: opening works, reading fails.
        fs::create_dir(file.path()).unwrap();
        let loaded = file.load();
        assert!(matches!(loaded, Loaded::SetAside { why: Unusable::Read(_), .. }), "{loaded:?}");
        assert!(loaded.scores().is_empty());
        assert!(!file.path().exists());
    }

    /// A FIFO in the file's place would block a read for ever (and the
    /// server's start with it): it is set aside unread.
    #[cfg(unix)]
    #[test]
    fn a_fifo_in_the_files_place_is_set_aside_unread() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        let made = std::process::Command::new("mkfifo").arg(file.path()).status().unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(file.load());
        });
        let loaded = rx.recv_timeout(std::time::Duration::from_secs(5)).expect("the load blocked on the FIFO");
        assert!(matches!(loaded, Loaded::SetAside { why: Unusable::Read(_), .. }), "{loaded:?}");
    }

    #[test]
    fn an_unreadable_directory_gives_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("plain-file");
        fs::write(&not_a_dir, b"x").unwrap();
        let file = ScoreFile::new(&not_a_dir, 15);
        let loaded = file.load();
        // Opening `plain-file/top-scores.json` fails (not a directory), and
        // so does moving it aside: nothing is saved over it this run.
        assert!(matches!(loaded, Loaded::Stuck { why: Unusable::Read(_), .. }), "{loaded:?}");
        assert!(loaded.scores().is_empty());
        assert_eq!(fs::read(&not_a_dir).unwrap(), b"x");
    }

    #[test]
    fn a_save_into_an_unwritable_place_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("plain-file");
        fs::write(&not_a_dir, b"x").unwrap();
        let file = ScoreFile::new(&not_a_dir.join("sub"), 15);
        assert!(file.save(&[e("ann", 1, 1)]).is_err());
        // The target is a directory: the rename fails, the temporary goes.
        let file = ScoreFile::new(dir.path(), 15);
        fs::create_dir(file.path()).unwrap();
        fs::write(file.path().join("inside"), b"x").unwrap();
        assert!(file.save(&[e("ann", 1, 1)]).is_err());
        assert_eq!(files_in(dir.path()), vec!["plain-file", FILE_NAME]);
    }

    #[test]
    fn another_version_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        let v2 = br#"{"version": 2, "scores": [{"name": "ann", "score": 4, "colour": 1}]}"#;
        fs::write(file.path(), v2).unwrap();
        let Loaded::SetAside { why, kept } = file.load() else { panic!("not set aside") };
        assert_eq!(why, Unusable::Version("2".into()));
        assert_eq!(fs::read(kept).unwrap(), v2);
    }

    #[test]
    fn documents_of_another_shape_are_refused() {
        for bad in [&b"[]"[..], b"null", b"{\"scores\": []}", b"{\"version\": 1}", b"{\"version\": 1, \"scores\": {}}"]
        {
            assert_eq!(parse(bad, 15), Err(Unusable::Shape), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"{\"version\": \"1\", \"scores\": []}", 15), Err(Unusable::Version("\"1\"".into())));
        assert!(matches!(parse(b"", 15), Err(Unusable::Json(_))));
        assert!(matches!(parse(b"\xff\xfe", 15), Err(Unusable::Json(_))));
    }

    #[test]
    fn a_huge_file_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        fs::write(file.path(), vec![b' '; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(matches!(file.load(), Loaded::SetAside { why: Unusable::TooLarge, .. }));
    }

    #[test]
    fn hostile_entries_are_dropped_and_the_rest_kept() {
        let bytes = doc(serde_json::json!([
            {"name": "ann", "score": 10, "colour": 2},
            {"name": "a name far longer than fifteen", "score": 99, "colour": 1},
            {"name": "", "score": 99, "colour": 1},
            {"name": "bell\u{7}", "score": 99, "colour": 1},
            {"name": "rtl\u{202e}", "score": 99, "colour": 1},
            {"name": " pad", "score": 99, "colour": 1},
            {"name": "zero", "score": 0, "colour": 1},
            {"name": "neg", "score": -5, "colour": 1},
            {"name": "float", "score": 1.5, "colour": 1},
            {"name": "huge", "score": 1e300, "colour": 1},
            {"name": "big", "score": MAX_SCORE + 1, "colour": 1},
            {"name": "colour0", "score": 5, "colour": 0},
            {"name": "colour7", "score": 5, "colour": 7},
            {"name": "colour300", "score": 5, "colour": 300},
            {"name": 5, "score": 5, "colour": 1},
            "ann",
            null,
            {"name": "max", "score": MAX_SCORE, "colour": 6},
        ]));
        let parsed = parse(&bytes, 15).unwrap();
        assert_eq!(parsed.scores, vec![e("max", MAX_SCORE, 6), e("ann", 10, 2)]);
        assert_eq!(parsed.dropped, 16);
        assert_eq!(parsed.reasons.len(), REASONS_SHOWN);
        assert!(parsed.reasons[0].contains("entry 1") && parsed.reasons[0].contains("1 to 15"), "{:?}", parsed.reasons);
    }

    #[test]
    fn one_entry_per_name_and_only_the_best_kept() {
        let mut items: Vec<Value> =
            (0..10_000u64).map(|i| serde_json::json!({"name": format!("p{i}"), "score": i + 1, "colour": 1})).collect();
        items.push(serde_json::json!({"name": "p0", "score": 50_000, "colour": 4}));
        let parsed = parse(&doc(Value::Array(items)), 3).unwrap();
        assert_eq!(parsed.scores, vec![e("p0", 50_000, 4), e("p9999", 10_000, 1), e("p9998", 9_999, 1)]);
        assert_eq!(parsed.dropped, 10_000 - 3);
    }
}
