//! Password hashing: argon2id with OWASP's minimum cost, on the blocking pool at a lower
//! scheduling priority, through a bounded queue. Logins go ahead of sign-ups (a sign-up
//! rush cannot keep people out), and when the queue is full the answer is immediate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

/// Hashes that may wait for a slot, per slot; beyond that, callers are refused at once.
const WAITING_PER_SLOT: usize = 16;

/// argon2id with OWASP's minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters"),
    )
}

pub(super) fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing of a bounded password succeeds")
        .to_string()
}

pub(super) fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| argon2().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// Runs CPU-heavy hashing at a lower scheduling priority (nice +10 for this thread), so a
/// burst of log-ins does not slow page serving. Best effort: where the priority cannot be
/// changed (or restored, without the privilege), hashing still runs.
fn with_low_priority<T>(work: impl FnOnce() -> T) -> T {
    #[cfg(target_os = "linux")]
    {
        // On Linux, PRIO_PROCESS with who = 0 applies to the calling thread only.
        // SAFETY: getpriority/setpriority take plain integers and touch no memory of ours.
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, before + 10) };
        let result = work();
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, before) };
        result
    }
    #[cfg(not(target_os = "linux"))]
    {
        work()
    }
}

/// Who is waiting for a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Someone logging in: goes straight to the slots.
    Login,
    /// A new account: at most one sign-up waits for the slots at a time.
    SignUp,
}

/// The hashing queue is full: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

#[derive(Debug)]
pub struct HashingPool {
    slots: Semaphore,
    sign_up_gate: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Counts a caller as waiting until it gets a slot (or gives up).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashingPool {
    /// `slots` hashes at once (each takes 19 MiB and a core).
    pub fn new(slots: usize) -> Arc<HashingPool> {
        let slots = slots.max(1);
        Arc::new(HashingPool {
            slots: Semaphore::new(slots),
            sign_up_gate: Semaphore::new(1),
            waiting: AtomicUsize::new(0),
            max_waiting: slots * WAITING_PER_SLOT,
        })
    }

    /// Callers waiting for a slot right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Runs `work` on the blocking pool once a slot is free, or refuses at once when too
    /// many are waiting already.
    pub async fn run<T: Send + 'static>(
        &self,
        priority: Priority,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, QueueFull> {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(QueueFull);
        }
        let waiting = Waiting(&self.waiting);
        let _gate = match priority {
            Priority::SignUp => Some(self.sign_up_gate.acquire().await.map_err(|_| QueueFull)?),
            Priority::Login => None,
        };
        let _slot = self.slots.acquire().await.map_err(|_| QueueFull)?;
        drop(waiting);
        tokio::task::spawn_blocking(move || with_low_priority(work))
            .await
            .map_err(|_| QueueFull)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_required_cost() {
        let hash = hash_blocking("correct horse battery staple");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(verify_blocking("correct horse battery staple", &hash));
        assert!(!verify_blocking("correct horse battery stapler", &hash));
        assert!(!verify_blocking("anything", "not a hash"));
    }
}
