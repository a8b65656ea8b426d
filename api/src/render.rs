//! Renders what a ticket holder shows at the gate: the ticket's code as a QR symbol (SVG or PNG), the printed
//! barcode text as a Code 128 barcode (SVG) for paper tickets, and a printable HTML page holding both.
//!
//! Everything here is a pure function of its input: no clock, no randomness, no I/O, so the same input gives the
//! same bytes (responses can be cached and compared). Every input is bounded and checked before any work is done;
//! a bad input is a `RenderError`, never a panic.
//!
//! The QR matrix comes from the `qrcode` crate; drawing is ours. `QrModules` is the single matrix that both the
//! SVG and the PNG are drawn from, so the two cannot disagree. Code 128 (code set B) is implemented here: it is one
//! table and a checksum.

mod code128;
mod page;
mod qr;
#[cfg(test)]
mod tests;

pub use code128::code128_svg;
pub use page::{ticket_html, TicketPage};
pub use qr::{qr_png, qr_svg, QR_PNG_MODULE_PX_MAX, QR_PNG_MODULE_PX_MIN};

#[cfg(test)]
use code128::*;
#[cfg(test)]
use page::*;
#[cfg(test)]
use qr::*;

/// Why a QR code, PNG or barcode could not be made. The input errors (all but `QrEncoding` and `PngEncoding`, which
/// are server faults) have messages meant for API clients.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the text to encode is empty")]
    Empty,
    #[error("the text to encode is {length} bytes long; at most {length_max} ASCII characters are allowed")]
    TooLong { length: usize, length_max: usize },
    #[error("character {character:?} at position {position} is not printable ASCII (space to '~')")]
    InvalidCharacter { character: char, position: usize },
    #[error("module size {module_px} px is outside {QR_PNG_MODULE_PX_MIN}..={QR_PNG_MODULE_PX_MAX}")]
    ModuleSizeOutOfRange { module_px: u32 },
    /// Not expected for valid input (512 bytes fit easily at level M); kept so the encoder never has to panic.
    #[error("the QR encoder refused the text: {0}")]
    QrEncoding(#[source] qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    PngEncoding(#[from] png::EncodingError),
}

/// A horizontal run of dark modules (QR) or one bar (Code 128), in modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub(super) start: usize,
    pub(super) length: usize,
}

/// Checks the one alphabet both symbologies accept here: 1..=`length_max` printable ASCII characters.
pub(super) fn check_printable_ascii(text: &str, length_max: usize) -> Result<(), RenderError> {
    if text.is_empty() {
        return Err(RenderError::Empty);
    }
    // Bytes, not chars: O(1), and for the ASCII we accept the two are the same.
    if text.len() > length_max {
        return Err(RenderError::TooLong { length: text.len(), length_max });
    }
    // Every character before the first bad one is one byte, so the byte offset is also the character position.
    match text.char_indices().find(|&(_, character)| !matches!(character, ' '..='~')) {
        Some((position, character)) => Err(RenderError::InvalidCharacter { character, position }),
        None => Ok(()),
    }
}

/// Escapes text for HTML and XML content and attribute values alike.
pub(super) fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(character),
        }
    }
    escaped
}
