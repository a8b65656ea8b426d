//! Reading QR symbols back from a PNG, as a phone or a gate scanner would: png's own
//! decoder and rqrr. One copy for the QR unit tests (`src/qr.rs`) and the email tests
//! (through `smtp.rs`), each including it with `#[path]`.

/// The text each QR symbol in a PNG decodes to.
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
