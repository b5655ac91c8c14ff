//! Text as an edit takes it: trimmed and within its field's limit, and a
//! name cleaned first ([`crate::people::clean_name`]).

use crate::error::CoreError;
use crate::schema::limits;

/// Checks a piece of text against its limit; returns it trimmed.
pub(crate) fn checked<'a>(
    field: &'static str,
    text: &'a str,
    max: usize,
    required: bool,
) -> Result<&'a str, CoreError> {
    let text = text.trim();
    if required && text.is_empty() {
        return Err(CoreError::Empty(field));
    }
    let len = text.chars().count();
    if len > max {
        return Err(CoreError::TooLong { field, len, max });
    }
    Ok(text)
}

/// A name (of a member, a device, a circle) as it will be kept
/// ([`crate::people::clean_name`]: no controls, no invisible characters),
/// or why it cannot be.
pub(crate) fn checked_name(field: &'static str, name: &str) -> Result<String, CoreError> {
    let cleaned = crate::people::clean_name(name);
    checked(field, &cleaned, limits::NAME, true)?;
    Ok(cleaned)
}
