//! The languages Kairo's pages and documents speak (the web UI, model cards): English and
//! Japanese. Each user of it keeps its own words; this is the one list of languages and codes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub const ALL: &'static [Lang] = &[Lang::En, Lang::Ja];

    /// `en` or `ja`, in any case.
    pub fn parse(text: &str) -> Option<Lang> {
        Lang::ALL.iter().copied().find(|l| l.code().eq_ignore_ascii_case(text))
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for l in Lang::ALL {
            assert_eq!(Lang::parse(l.code()), Some(*l));
        }
        assert_eq!(Lang::parse("JA"), Some(Lang::Ja));
        assert_eq!(Lang::parse("fr"), None);
    }
}
