//! The local mailbox: in the embedded mode without `SMTP_URL`, what would have been sent is
//! kept here (in memory, per instance, the latest [`MAILBOX_SIZE`]) for `/mailbox`, so that
//! a newcomer can follow every link.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Messages the local mailbox keeps.
pub const MAILBOX_SIZE: usize = 200;

/// A message kept in the local mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub at: i64,
}

/// What would have been sent, oldest first.
#[derive(Debug, Clone, Default)]
pub struct LocalMailbox(Arc<Mutex<VecDeque<KeptMail>>>);

impl LocalMailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<KeptMail>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps a message, forgetting the oldest past [`MAILBOX_SIZE`].
    pub fn keep(&self, mail: KeptMail) {
        let mut kept = self.lock();
        if kept.len() >= MAILBOX_SIZE {
            kept.pop_front();
        }
        kept.push_back(mail);
    }

    /// Every message kept, oldest first.
    pub fn messages(&self) -> Vec<KeptMail> {
        self.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mailbox_keeps_the_latest() {
        let mailbox = LocalMailbox::default();
        for i in 0..MAILBOX_SIZE + 3 {
            mailbox.keep(KeptMail {
                to: format!("m{i}@example.com"),
                subject: String::new(),
                text: String::new(),
                at: i as i64,
            });
        }
        let kept = mailbox.messages();
        assert_eq!(kept.len(), MAILBOX_SIZE);
        assert_eq!(kept[0].at, 3, "the oldest went first");
    }
}
