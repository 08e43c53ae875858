//! How much work one request may ask for. Every size a request declares (a shape, a binary
//! length, a row count) is checked here, with overflow-safe arithmetic, against the bytes the
//! request really brought and against these limits **before** anything is allocated from it.

/// Per-request limits of the inference endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Most rows (the first dimension, or CSV/JSON records) in one request.
    pub max_rows: usize,
    /// Most tensor elements in one request, summed over its inputs.
    pub max_elements: usize,
    /// Largest response body, in bytes.
    pub max_response: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body: 32 << 20, max_rows: 100_000, max_elements: 8 << 20, max_response: 64 << 20 }
    }
}

/// Why a request body was not turned into tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed, or inconsistent with itself or the model: 400.
    Bad(String),
    /// Asks for more than a limit allows: 413.
    TooLarge(String),
}

impl Refusal {
    pub fn message(&self) -> &str {
        match self {
            Refusal::Bad(m) | Refusal::TooLarge(m) => m,
        }
    }
}

impl From<String> for Refusal {
    fn from(m: String) -> Self {
        Refusal::Bad(m)
    }
}

impl From<&str> for Refusal {
    fn from(m: &str) -> Self {
        Refusal::Bad(m.to_string())
    }
}

impl Limits {
    /// A request of `rows` rows: refused above `max_rows`.
    /// (`what` is only formatted for a refusal.)
    pub fn check_rows(&self, what: impl std::fmt::Display, rows: usize) -> Result<(), Refusal> {
        if rows > self.max_rows {
            return Err(Refusal::TooLarge(format!(
                "{what} has {rows} rows; this server accepts at most {} per request (`kairo serve --max-rows`); \
                 split the request",
                self.max_rows
            )));
        }
        Ok(())
    }

    /// The elements of `shape` on top of `so_far` (overflow-safe): refused above
    /// `max_elements`. Returns this shape's elements and the new total.
    pub fn add_shape(
        &self,
        what: impl std::fmt::Display,
        shape: &[usize],
        so_far: usize,
    ) -> Result<(usize, usize), Refusal> {
        let count = elements(shape);
        match count.and_then(|c| so_far.checked_add(c)) {
            Some(total) if total <= self.max_elements => Ok((count.unwrap_or(0), total)),
            _ => Err(Refusal::TooLarge(format!(
                "{what} has {} elements; this server accepts at most {} per request \
                 (`kairo serve --max-elements`); split the request",
                count.map_or_else(|| "more than 2^64".to_string(), |c| c.to_string()),
                self.max_elements
            ))),
        }
    }

    /// The refusal of a response that would exceed `max_response`.
    pub fn response_too_large(&self) -> Refusal {
        Refusal::TooLarge(format!(
            "the response would exceed {} bytes (`kairo serve --max-response-mb`); send fewer rows per request",
            self.max_response
        ))
    }
}

/// The product of a shape's dimensions, or `None` when it overflows.
pub fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, d| acc.checked_mul(*d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_before_overflow() {
        let l = Limits { max_body: 1, max_rows: 10, max_elements: 100, max_response: 1 };
        assert!(l.check_rows("x", 10).is_ok());
        assert!(matches!(l.check_rows("x", 11), Err(Refusal::TooLarge(m)) if m.contains("--max-rows")));
        assert_eq!(l.add_shape("x", &[5, 10], 50), Ok((50, 100)));
        assert!(matches!(l.add_shape("x", &[51], 50), Err(Refusal::TooLarge(_))));
        assert!(matches!(l.add_shape("x", &[1], usize::MAX), Err(Refusal::TooLarge(_))));
        assert!(matches!(l.add_shape("x", &[1 << 40, 1 << 40], 0), Err(Refusal::TooLarge(m)) if m.contains("2^64")));
        assert_eq!(elements(&[1 << 31, 1 << 31]), Some(1 << 62));
        assert_eq!(elements(&[1 << 40, 1 << 40]), None);
        assert_eq!(elements(&[2_147_483_648, 0]), Some(0));
    }
}
