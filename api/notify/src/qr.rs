//! The QR code of a ticket code as a PNG, for the email's inline images.
//!
//! A copy of the drawing in `hakken-api`'s `render/qr.rs` (same level M, same 4-module
//! quiet zone, same 1-bit PNG), reduced to the PNG path: that module lives in the API
//! crate, which depends on the engine and RocksDB, and this crate must not. Both draw from
//! the `qrcode` crate's matrix, so a scanner reads the email's symbol as the page's.

use qrcode::{Color, EcLevel, QrCode};

/// Longest code drawn, as in the API's renderer: ticket codes are ~135 characters.
pub const CODE_LENGTH_MAX: usize = 512;

/// Light modules around the symbol: ISO/IEC 18004 asks for at least 4.
const QUIET_ZONE_MODULES: usize = 4;

/// Pixels per module in the email's PNG: a ~135-character code is a version 10 symbol
/// (57 modules + quiet zone = 65), so 6 px gives a 390 px image, large enough for a phone
/// screen held to a gate scanner and small enough for mail (~1-2 KB at 1 bit per pixel).
pub const EMAIL_MODULE_PX: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("the ticket code is empty")]
    Empty,
    #[error("the ticket code is {length} bytes long; at most {CODE_LENGTH_MAX} are drawn")]
    TooLong { length: usize },
    #[error("the ticket code has a character that is not printable ASCII at byte {position}")]
    NotPrintableAscii { position: usize },
    #[error("the QR encoder refused the code: {0}")]
    Encoding(#[source] qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// The code as a QR symbol (level M, 4-module quiet zone) in a 1-bit grayscale PNG.
pub fn qr_png(code: &str) -> Result<Vec<u8>, QrError> {
    check_code(code)?;
    let symbol = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).map_err(QrError::Encoding)?;
    let symbol_size = symbol.width();
    let size = symbol_size + 2 * QUIET_ZONE_MODULES;
    let mut dark = vec![false; size * size];
    for (index, color) in symbol.into_colors().into_iter().enumerate() {
        let x = QUIET_ZONE_MODULES + index % symbol_size;
        let y = QUIET_ZONE_MODULES + index / symbol_size;
        dark[y * size + x] = color == Color::Dark;
    }
    encode_png(&dark, size)
}

fn check_code(code: &str) -> Result<(), QrError> {
    if code.is_empty() {
        return Err(QrError::Empty);
    }
    if code.len() > CODE_LENGTH_MAX {
        return Err(QrError::TooLong { length: code.len() });
    }
    match code.bytes().position(|byte| !(b' '..=b'~').contains(&byte)) {
        Some(position) => Err(QrError::NotPrintableAscii { position }),
        None => Ok(()),
    }
}

fn encode_png(dark: &[bool], size: usize) -> Result<Vec<u8>, QrError> {
    let size_px = size * EMAIL_MODULE_PX;
    let row_bytes = size_px.div_ceil(8);
    let mut pixels = Vec::with_capacity(row_bytes * size_px);
    for row in dark.chunks_exact(size) {
        // Grayscale 0 is black, so light pixels are the set bits, most significant first.
        let mut packed_row = vec![0u8; row_bytes];
        for x_px in 0..size_px {
            if !row[x_px / EMAIL_MODULE_PX] {
                packed_row[x_px / 8] |= 0x80 >> (x_px % 8);
            }
        }
        for _ in 0..EMAIL_MODULE_PX {
            pixels.extend_from_slice(&packed_row);
        }
    }
    // At most 185 modules (version 40) + quiet zone, times 6 px: far below u32::MAX.
    let size_px = u32::try_from(size_px).map_err(|_| QrError::TooLong { length: CODE_LENGTH_MAX })?;
    let mut png_bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut png_bytes, size_px, size_px);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(png_bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a PNG with png's own decoder and reads every QR symbol in it with rqrr.
    pub(crate) fn decode_qr_png(png_bytes: &[u8]) -> Vec<String> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("PNG header");
        let mut luma = vec![0; reader.output_buffer_size().expect("buffer size")];
        let frame = reader.next_frame(&mut luma).expect("PNG frame");
        let width = frame.width as usize;
        let mut image =
            rqrr::PreparedImage::prepare_from_greyscale(width, frame.height as usize, |x, y| luma[y * width + x]);
        image.detect_grids().iter().map(|grid| grid.decode().expect("a detected grid decodes").1).collect()
    }

    #[test]
    fn the_png_scans_back_to_the_code() {
        let code = format!("HK1.{}", "A".repeat(131));
        assert_eq!(decode_qr_png(&qr_png(&code).expect("png")), vec![code]);
    }

    #[test]
    fn bad_codes_are_refused() {
        assert!(matches!(qr_png(""), Err(QrError::Empty)));
        assert!(matches!(qr_png(&"A".repeat(CODE_LENGTH_MAX + 1)), Err(QrError::TooLong { .. })));
        assert!(matches!(qr_png("HK1.é"), Err(QrError::NotPrintableAscii { position: 4 })));
    }
}
