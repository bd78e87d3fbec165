//! Keeping the standalone mode's top scores in their file while it runs:
//! seeded from the file at start, saved whenever they change (at most once
//! per [`SAVE_EVERY`]) and a last time when the keeper is finished (after
//! the rooms have stopped, so the last game's scores are in). One server
//! saves in a data folder at a time: the keeper holds the folder's lock
//! ([`LOCK_NAME`]); a second server reads the scores and keeps its own in
//! memory.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use snakepit_bus::{MemoryBackend, ScoreEntry, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use crate::score_file::{Loaded, ScoreFile, Unusable};

/// Changes are saved at most this often (and this long after the first).
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Keeps the in-memory backend's top scores in a [`ScoreFile`].
pub struct ScoreKeeper {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    /// The data folder's lock, held while this server saves there.
    _lock: Option<fs::File>,
}

/// Name of the lock file in the data folder: one server saves there at a
/// time (two would replace each other's temporary file mid-write).
pub const LOCK_NAME: &str = "top-scores.lock";

/// Takes the data folder's lock (blocking); `Ok(None)` if another process
/// holds it.
fn lock_dir(dir: &Path) -> io::Result<Option<fs::File>> {
    fs::create_dir_all(dir)?;
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_NAME))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

impl ScoreKeeper {
    /// Loads the file into `backend`, then saves the best scores whenever
    /// they change, at most once per `save_every`, until [`Self::finish`].
    pub async fn start(backend: MemoryBackend, file: ScoreFile, save_every: Duration) -> Self {
        let stop = CancellationToken::new();
        let dir = file.dir().to_path_buf();
        let mut shared = false;
        let lock = match tokio::task::spawn_blocking(move || lock_dir(&dir)).await {
            Ok(Ok(Some(lock))) => Some(lock),
            Ok(Ok(None)) => {
                error!(
                    dir = %file.dir().display(),
                    "another server keeps its top scores in this folder: this one reads them but keeps \
                     its own in memory only (give each server its own --data-dir)"
                );
                shared = true;
                None
            }
            // No lock to be had (a read-only folder...): saves will fail and
            // say so; loading still works.
            Ok(Err(e)) => {
                warn!(dir = %file.dir().display(), error = %e, "cannot lock the data folder");
                None
            }
            Err(e) => {
                warn!(error = %e, "locking the data folder failed");
                None
            }
        };
        let file = Arc::new(file);
        let loading = file.clone();
        let loaded = tokio::task::spawn_blocking(move || loading.load()).await.unwrap_or_else(|e| {
            // Loading does not panic; if it ever did, the file is left alone.
            error!(error = %e, "loading the top scores failed");
            Loaded::Stuck { why: Unusable::Read(e.to_string()), error: e.to_string() }
        });
        for entry in loaded.scores() {
            // The in-memory backend does not fail.
            let _ = backend.submit_score(entry.clone()).await;
        }
        if shared || matches!(loaded, Loaded::Stuck { .. }) {
            return Self { stop, task: None, _lock: lock };
        }
        // Subscribed after seeding: the loaded scores are not a change.
        let changes = backend.watch_scores();
        let saved = backend.top_scores(file.keep).await.unwrap_or_default();
        let saver = Saver { backend, file, saved };
        let task = tokio::spawn(saver.run(changes, save_every, stop.clone()));
        Self { stop, task: Some(task), _lock: lock }
    }

    /// Saves what changed since the last save, and stops.
    pub async fn finish(self) {
        self.stop.cancel();
        if let Some(task) = self.task
            && let Err(e) = task.await
        {
            error!(error = %e, "the top scores saver failed");
        }
    }
}

struct Saver {
    backend: MemoryBackend,
    file: Arc<ScoreFile>,
    /// What the file holds.
    saved: Vec<ScoreEntry>,
}

impl Saver {
    async fn run(mut self, mut changes: watch::Receiver<u64>, save_every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                () = stop.cancelled() => break,
            }
            // Whatever else changes meanwhile goes into the same save.
            tokio::select! {
                () = tokio::time::sleep(save_every) => {}
                () = stop.cancelled() => break,
            }
            changes.borrow_and_update();
            self.save().await;
        }
        self.save().await;
    }

    /// Writes the best scores if they differ from the file's.
    async fn save(&mut self) {
        let top = self.backend.top_scores(self.file.keep).await.unwrap_or_default();
        if top == self.saved {
            return;
        }
        let (file, scores) = (self.file.clone(), top.clone());
        let path = self.file.path().display();
        match tokio::task::spawn_blocking(move || file.save(&scores)).await {
            Ok(Ok(())) => {
                debug!(path = %path, scores = top.len(), "top scores saved");
                self.saved = top;
            }
            Ok(Err(e)) => warn!(
                path = %path,
                error = %e,
                "cannot save the top scores (the game goes on; the next change tries again)"
            ),
            Err(e) => error!(path = %path, error = %e, "saving the top scores failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score_file::FILE_NAME;
    use crate::score_file::tests::{e, files_in};

    #[tokio::test]
    async fn the_keeper_seeds_the_backend_and_saves_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 2);
        file.save(&[e("ann", 5, 1)]).unwrap();
        let backend = MemoryBackend::new();
        let keeper = ScoreKeeper::start(backend.clone(), file.clone(), Duration::from_millis(50)).await;
        assert_eq!(backend.top_scores(10).await.unwrap(), vec![e("ann", 5, 1)]);
        backend.submit_score(e("bob", 9, 2)).await.unwrap();
        backend.submit_score(e("cy", 1, 3)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while file.load().scores() != [e("bob", 9, 2), e("ann", 5, 1)] {
            assert!(tokio::time::Instant::now() < deadline, "not saved: {:?}", file.load());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        keeper.finish().await;
        assert_eq!(files_in(dir.path()), vec![FILE_NAME, LOCK_NAME]);
    }

    #[tokio::test]
    async fn finishing_saves_what_changed_since_the_last_save() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 15);
        let backend = MemoryBackend::new();
        // Far longer than the test: only the last save can write.
        let keeper = ScoreKeeper::start(backend.clone(), file.clone(), Duration::from_secs(3600)).await;
        backend.submit_score(e("ann", 5, 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(file.load(), Loaded::Missing), "saved before the window ended");
        keeper.finish().await;
        assert_eq!(file.load().scores(), &[e("ann", 5, 1)]);
    }

    /// Two servers on one folder would replace each other's temporary file
    /// mid-write: the second reads the scores but never saves.
    #[tokio::test]
    async fn a_second_keeper_of_a_folder_reads_but_never_saves() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 5);
        file.save(&[e("ann", 5, 1)]).unwrap();
        let (first, second) = (MemoryBackend::new(), MemoryBackend::new());
        let keeper = ScoreKeeper::start(first.clone(), file.clone(), Duration::ZERO).await;
        let other = ScoreKeeper::start(second.clone(), file.clone(), Duration::ZERO).await;
        assert_eq!(second.top_scores(5).await.unwrap(), vec![e("ann", 5, 1)], "it reads them");
        second.submit_score(e("bob", 9, 2)).await.unwrap();
        other.finish().await;
        assert_eq!(file.load().scores(), &[e("ann", 5, 1)], "the second never saved");
        first.submit_score(e("cy", 7, 3)).await.unwrap();
        keeper.finish().await;
        assert_eq!(file.load().scores(), &[e("cy", 7, 3), e("ann", 5, 1)]);
        // Once the first is done, the folder is free again.
        let next = ScoreKeeper::start(second.clone(), file.clone(), Duration::ZERO).await;
        second.submit_score(e("dee", 8, 4)).await.unwrap();
        next.finish().await;
        assert_eq!(file.load().scores()[0], e("bob", 9, 2));
    }

    #[tokio::test]
    async fn an_unchanged_list_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = ScoreFile::new(dir.path(), 1);
        file.save(&[e("ann", 5, 1)]).unwrap();
        let before = fs::metadata(file.path()).unwrap().modified().unwrap();
        let backend = MemoryBackend::new();
        let keeper = ScoreKeeper::start(backend.clone(), file.clone(), Duration::from_millis(10)).await;
        // A change below the kept best one: the file's list is the same.
        backend.submit_score(e("bob", 1, 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        keeper.finish().await;
        assert_eq!(fs::metadata(file.path()).unwrap().modified().unwrap(), before);
    }

    #[tokio::test]
    async fn a_failing_save_keeps_the_game_going() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("plain-file");
        fs::write(&not_a_dir, b"x").unwrap();
        let file = ScoreFile::new(&not_a_dir.join("sub"), 15);
        let backend = MemoryBackend::new();
        let keeper = ScoreKeeper::start(backend.clone(), file, Duration::from_millis(10)).await;
        backend.submit_score(e("ann", 5, 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(backend.top_scores(10).await.unwrap(), vec![e("ann", 5, 1)]);
        keeper.finish().await;
    }

    /// A data directory so deep that `top-scores.json.tmp` fits in a path
    /// (4095 bytes on Linux) but `top-scores.json.corrupt-<secs>` does not:
    /// a corrupt file there cannot be moved aside, while saves would work.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_file_that_cannot_be_moved_aside_is_never_written() {
        let root = tempfile::tempdir().unwrap();
        let target = 4095 - ".tmp".len() - 4;
        let mut dir = root.path().to_path_buf();
        // Each component adds a separator and its name.
        let mut need = target - (dir.as_os_str().len() + 1 + FILE_NAME.len());
        while need > 0 {
            let chunk = if need > 150 { 100 } else { need };
            dir.push("d".repeat(chunk - 1));
            need -= chunk;
        }
        fs::create_dir_all(&dir).unwrap();
        let file = ScoreFile::new(&dir, 15);
        assert_eq!(file.path().as_os_str().len(), target);
        file.save(&[e("ann", 1, 1)]).unwrap();
        fs::write(file.path(), b"garbage").unwrap();
        let backend = MemoryBackend::new();
        let keeper = ScoreKeeper::start(backend.clone(), file.clone(), Duration::ZERO).await;
        backend.submit_score(e("bob", 5, 1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        keeper.finish().await;
        assert_eq!(fs::read(file.path()).unwrap(), b"garbage");
    }
}
