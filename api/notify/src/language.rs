//! The language an event's notifications are written in. One per event (its buyers read
//! one language at the venue's door too); templates ship for each.

use std::fmt;
use std::str::FromStr;

/// The languages templates ship for. Adding one means adding its templates directory and
/// its words in `datetime` and `place`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    Ja,
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Ja, Language::En];

    /// The BCP 47 tag, also the name of the language's templates directory.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Ja => "ja",
            Language::En => "en",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language {given:?}: give \"ja\" or \"en\"")]
pub struct LanguageError {
    pub given: String,
}

impl FromStr for Language {
    type Err = LanguageError;

    fn from_str(text: &str) -> Result<Language, LanguageError> {
        Language::ALL
            .into_iter()
            .find(|language| language.as_str() == text)
            .ok_or_else(|| LanguageError { given: text.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_own_names_only() {
        for language in Language::ALL {
            assert_eq!(language.as_str().parse::<Language>(), Ok(language));
        }
        assert_eq!("JA".parse::<Language>(), Err(LanguageError { given: "JA".to_string() }));
        assert!("fr".parse::<Language>().is_err());
    }
}
