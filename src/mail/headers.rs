//! The headers of every email that lettre does not know: one-click unsubscribe
//! (RFC 8058) and `Auto-Submitted` (RFC 3834).

use lettre::message::header::{Header, HeaderName, HeaderValue};

/// Defines a header lettre does not know, with its fixed name (and, when given, its fixed
/// value; otherwise the type has a `value` method).
macro_rules! simple_header {
    ($type:ident, $name:literal, $value:literal) => {
        impl $type {
            fn value(&self) -> String {
                $value.into()
            }
        }
        simple_header!($type, $name);
    };
    ($type:ident, $name:literal) => {
        impl Header for $type {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Err(concat!($name, " is only written").into())
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.value())
            }
        }
    };
}

/// `List-Unsubscribe: <https://…>` (RFC 2369).
#[derive(Clone)]
pub(super) struct ListUnsubscribe(pub(super) String);
impl ListUnsubscribe {
    fn value(&self) -> String {
        self.0.clone()
    }
}
simple_header!(ListUnsubscribe, "List-Unsubscribe");

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Clone)]
pub(super) struct ListUnsubscribePost;
simple_header!(
    ListUnsubscribePost,
    "List-Unsubscribe-Post",
    "List-Unsubscribe=One-Click"
);

/// `Auto-Submitted: auto-generated` (RFC 3834): no out-of-office replies.
#[derive(Clone)]
pub(super) struct AutoSubmitted;
simple_header!(AutoSubmitted, "Auto-Submitted", "auto-generated");
