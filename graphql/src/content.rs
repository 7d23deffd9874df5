//! Making message text safe.
//!
//! Clients receive *plain text that is also inert HTML*: no element, comment
//! or entity survives, so a client that renders the text as text shows what
//! was written, and one that (wrongly) uses `innerHTML` runs nothing. Nothing
//! is escaped, so nothing is ever escaped twice: `5 < 6 & "quotes"` stays
//! exactly that.
//!
//! ammonia (with no tag allowed, and `script`/`style` removed with their
//! contents) strips markup and escapes what is left; we then decode its
//! escapes back to text. Decoding can reveal markup that was hidden in
//! entities (`&lt;script&gt;`), so the step repeats until the text no
//! longer changes: a fixpoint has no markup left by construction.

use crate::error::ApiError;

/// Longest accepted message, in characters, after cleaning and trimming.
pub const MAX_MESSAGE_CHARS: usize = 4000;
/// Input longer than this is refused before parsing, to bound the work.
const MAX_RAW_BYTES: usize = 64 * 1024;
/// Longest display name, in characters, after cleaning and trimming.
pub const MAX_NAME_CHARS: usize = 64;
/// A name's raw input is refused beyond this, before parsing.
const MAX_NAME_RAW_BYTES: usize = 1024;
/// Each round peels one layer of entity encoding; more layers than this is
/// not a message anyone typed.
const MAX_ROUNDS: usize = 8;

pub fn clean_message(raw: &str) -> Result<String, ApiError> {
    if raw.len() > MAX_RAW_BYTES {
        return Err(ApiError::bad_input(format!(
            "content is too long: at most {MAX_MESSAGE_CHARS} characters"
        )));
    }
    let text = strip_markup(raw, "content")?;
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(ApiError::bad_input(
            "content is empty (after removing markup)",
        ));
    }
    if chars > MAX_MESSAGE_CHARS {
        return Err(ApiError::bad_input(format!(
            "content is too long: {chars} characters, at most {MAX_MESSAGE_CHARS}"
        )));
    }
    Ok(trimmed.to_owned())
}

/// A display name, made safe the same way as message text (clients show it
/// beside messages, so the same rendering rule holds), and kept to one line:
/// a name is a label, and a line break or other control character in one
/// only serves to spoof the text around it.
pub fn clean_name(raw: &str) -> Result<String, ApiError> {
    if raw.len() > MAX_NAME_RAW_BYTES {
        return Err(ApiError::bad_input(format!(
            "name is too long: at most {MAX_NAME_CHARS} characters"
        )));
    }
    let text = strip_markup(raw, "name")?;
    let trimmed = text.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(ApiError::bad_input(
            "name is empty (after removing markup); send null to clear it",
        ));
    }
    if chars > MAX_NAME_CHARS {
        return Err(ApiError::bad_input(format!(
            "name is too long: {chars} characters, at most {MAX_NAME_CHARS}"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::bad_input(
            "name may not hold line breaks or other control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Removes markup until none is left (see the module doc); `what` names the
/// argument in the error.
fn strip_markup(raw: &str, what: &str) -> Result<String, ApiError> {
    let sanitizer = ammonia::Builder::empty();
    let mut text = raw.to_owned();
    for _ in 0..MAX_ROUNDS {
        let next = decode_serializer_escapes(&sanitizer.clean(&text).to_string());
        if next == text {
            return Ok(text);
        }
        text = next;
    }
    Err(ApiError::bad_input(format!(
        "{what} has too many layers of encoded markup"
    )))
}

/// Reverses exactly the escapes html5ever's serializer writes in text nodes.
fn decode_serializer_escapes(html: &str) -> String {
    html.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::{clean_message, clean_name};

    fn clean(s: &str) -> String {
        clean_message(s).expect("clean")
    }

    #[test]
    fn plain_text_is_kept_as_written() {
        assert_eq!(
            clean(r#"5 < 6 & "quotes" > 'apostrophes'"#),
            r#"5 < 6 & "quotes" > 'apostrophes'"#
        );
        assert_eq!(clean("  héllo 👋  "), "héllo 👋");
    }

    #[test]
    fn scripts_are_removed_with_their_contents() {
        assert_eq!(clean("hi<script>alert(1)</script>"), "hi");
    }

    #[test]
    fn event_handlers_and_javascript_urls_do_not_survive() {
        assert_eq!(clean(r#"<img src=x onerror="alert(1)">pic"#), "pic");
        assert_eq!(clean(r#"<a href="javascript:alert(1)">click</a>"#), "click");
    }

    #[test]
    fn markup_hidden_in_entities_is_removed_too() {
        assert_eq!(clean("&lt;script&gt;alert(1)&lt;/script&gt;ok"), "ok");
        assert_eq!(clean("&amp;lt;img src=x onerror=alert(1)&amp;gt;ok"), "ok");
    }

    #[test]
    fn empty_and_oversized_content_is_refused() {
        assert!(clean_message("   ").is_err());
        assert!(clean_message("<script>x</script>").is_err());
        assert!(clean_message(&"a".repeat(4001)).is_err());
        assert_eq!(clean(&"a".repeat(4000)).len(), 4000);
    }

    #[test]
    fn names_are_cleaned_like_messages_and_kept_to_one_line() {
        assert_eq!(clean_name("  Zoë <b>B.</b> ").expect("clean"), "Zoë B.");
        assert_eq!(clean_name("Tom & Jerry").expect("clean"), "Tom & Jerry");
        assert!(clean_name("<script>x</script>").is_err());
        assert!(clean_name("two\nlines").is_err());
        assert!(clean_name(&"n".repeat(65)).is_err());
        assert_eq!(clean_name(&"n".repeat(64)).expect("clean").len(), 64);
    }
}
