//! The library's closed sets of values ([`crate::choice::Choice`]) as clap flag values: the
//! names, help lines and hidden values come from each type's table, so the library holds no
//! clap types and a new value needs nothing here.

use crate::choice::Choice;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

/// `impl clap::ValueEnum` for library types through their [`Choice`] tables.
macro_rules! value_enums {
    ($($t:ty),+ $(,)?) => {$(
        impl clap::ValueEnum for $t {
            fn value_variants<'a>() -> &'a [Self] {
                <$t as Choice>::ALL
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name()).help(self.help()).hide(self.hidden()))
            }
        }
    )+};
}

value_enums!(
    crate::optim::Optimizer,
    crate::optim::Schedule,
    crate::train::KeyMap,
    crate::train::DeviceKind,
    crate::data::DatasetKind,
    crate::data::DataChoice,
    crate::data::transform::Preset,
    crate::data::transform::TrainCrop,
    crate::study::prune::Layers,
    crate::study::grid::Preset,
    crate::study::search::Space,
);

/// A flag's values from a [`Choice`] type of another crate, which `clap::ValueEnum` cannot be
/// implemented for here (`--aggregate`: the net crate's operators): the same names, help and
/// errors as a value enum's.
pub fn choice_parser<T: Choice + Send + Sync>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        T::ALL
            .iter()
            .map(|v| PossibleValue::new(v.name()).help(v.help()).hide(v.hidden())),
    )
    .map(|s| T::from_name(&s).expect("clap accepts only the possible values"))
}
