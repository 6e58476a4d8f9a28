//! Closed sets of named values — an optimiser, a schedule, a dataset, a device — described once,
//! in the library, with no command-line types: the command line (`cli::choices`) offers them as
//! flag values from [`Choice::ALL`], and error messages and records name them by
//! [`Choice::name`], so a new value is one variant and one line of each table.

/// A closed set of named values.
pub trait Choice: Copy + PartialEq + 'static {
    /// Every value, in the order help lists them.
    const ALL: &'static [Self];
    /// The value's name on the command line (kebab-case).
    fn name(self) -> &'static str;
    /// One line of help for the value.
    fn help(self) -> &'static str;
    /// Whether help leaves the value out (offered where a build cannot use it, e.g. CUDA in a
    /// build without the `cuda` feature).
    fn hidden(self) -> bool {
        false
    }
    /// The value named `name` (exactly), if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == name)
    }
}

/// `impl Choice for T` from one line per value: `Variant => "name", "help"`.
#[macro_export]
macro_rules! choice_table {
    ($t:ty { $($v:ident => $name:literal, $help:expr),+ $(,)? }) => {
        impl $crate::choice::Choice for $t {
            const ALL: &'static [Self] = &[$(<$t>::$v),+];
            fn name(self) -> &'static str {
                match self { $(<$t>::$v => $name),+ }
            }
            fn help(self) -> &'static str {
                match self { $(<$t>::$v => $help),+ }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Choice;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Fruit {
        Apple,
        BloodOrange,
    }
    crate::choice_table!(Fruit {
        Apple => "apple", "An apple",
        BloodOrange => "blood-orange", "A red orange",
    });

    #[test]
    fn a_table_names_every_value_and_parses_its_names() {
        assert_eq!(Fruit::ALL, &[Fruit::Apple, Fruit::BloodOrange]);
        assert_eq!(Fruit::BloodOrange.name(), "blood-orange");
        assert_eq!(Fruit::Apple.help(), "An apple");
        assert_eq!(Fruit::from_name("blood-orange"), Some(Fruit::BloodOrange));
        assert_eq!(Fruit::from_name("Apple"), None);
        assert!(!Fruit::Apple.hidden());
    }
}
