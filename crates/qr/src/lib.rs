//! QR codes for health codes: rendering a code's text to SVG or PNG for print and the command line,
//! and reading the text back from a photo or screenshot.
//!
//! Servers do not call the renderer on the path that serves codes: a holder's page draws the QR
//! itself from the token text. Rendering is for printed codes, posters and tools.

use qrcode::{EcLevel, QrCode, Version};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit a QR code.
    #[error("the text does not fit in a QR code: {0}")]
    TooLong(String),
    /// The image could not be read.
    #[error("cannot read the image: {0}")]
    Image(String),
    /// No QR code was found in the image.
    #[error("no QR code found in the image")]
    NotFound,
    /// A QR code was found but could not be decoded.
    #[error("a QR code was found but could not be read: {0}")]
    Unreadable(String),
    /// Writing the output failed.
    #[error("cannot write the image: {0}")]
    Write(String),
}

/// A QR code ready to render, at error-correction level M (15% of the symbol can be damaged).
pub struct Qr {
    code: QrCode,
}

impl std::fmt::Debug for Qr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Qr(version {}, {} modules)", self.version(), self.width())
    }
}

impl Qr {
    /// Encodes text. Text made only of QR alphanumeric characters (upper case, digits, `$%*+-./:`
    /// and space), as health codes are, is carried in alphanumeric mode.
    pub fn new(text: &str) -> Result<Qr, QrError> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|e| QrError::TooLong(e.to_string()))?;
        Ok(Qr { code })
    }

    /// The QR version (1 to 40); the symbol is `17 + 4 × version` modules wide.
    pub fn version(&self) -> i16 {
        match self.code.version() {
            Version::Normal(v) | Version::Micro(v) => v,
        }
    }

    /// Width in modules, without the quiet zone.
    pub fn width(&self) -> usize {
        self.code.width()
    }

    /// An SVG document, black on white with the standard four-module quiet zone.
    pub fn to_svg(&self, module_px: u32) -> String {
        self.code
            .render::<qrcode::render::svg::Color<'_>>()
            .module_dimensions(module_px, module_px)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .quiet_zone(true)
            .build()
    }

    /// A PNG image with `module_px` pixels a module.
    pub fn to_png(&self, module_px: u32) -> Result<Vec<u8>, QrError> {
        let img = self
            .code
            .render::<image::Luma<u8>>()
            .module_dimensions(module_px, module_px)
            .quiet_zone(true)
            .build();
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .map_err(|e| QrError::Write(e.to_string()))?;
        Ok(out.into_inner())
    }
}

/// Finds and decodes the first QR code in an image file's bytes (PNG or JPEG).
pub fn decode_image(bytes: &[u8]) -> Result<String, QrError> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| QrError::Image(e.to_string()))?
        .to_luma8();
    let (w, h) = img.dimensions();
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w as usize, h as usize, |x, y| {
        // Coordinates come from the image's own dimensions.
        img.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    let mut last_err = None;
    for grid in grids {
        match grid.decode() {
            Ok((_, text)) => return Ok(text),
            Err(e) => last_err = Some(e),
        }
    }
    match last_err {
        Some(e) => Err(QrError::Unreadable(e.to_string())),
        None => Err(QrError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip() {
        let text = "HC1:NBSWY3DPEB3W64TMMQQQ";
        let qr = Qr::new(text).unwrap();
        let png = qr.to_png(4).unwrap();
        assert_eq!(decode_image(&png).unwrap(), text);
    }

    #[test]
    fn svg_has_the_right_size() {
        let qr = Qr::new("HC1:ABC").unwrap();
        let svg = qr.to_svg(2);
        let px = (qr.width() + 8) * 2;
        assert!(svg.contains(&format!("width=\"{px}\"")), "{svg}");
    }

    #[test]
    fn no_code_in_a_blank_image() {
        let img = image::GrayImage::from_pixel(100, 100, image::Luma([255]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        assert!(matches!(decode_image(&out.into_inner()), Err(QrError::NotFound)));
    }

    #[test]
    fn garbage_is_not_an_image() {
        assert!(matches!(decode_image(b"not an image"), Err(QrError::Image(_))));
    }
}
