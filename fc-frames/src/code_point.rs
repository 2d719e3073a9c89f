//! `code_point!`: open code point newtypes from one list (after rustls `enum_builder!` and
//! smoltcp `enum_with_unknown!`).
//!
//! A code point is a newtype over the wire integer with a constant for each value the standard
//! assigns, so a value this crate does not know is data rather than a parse error. Each value is
//! written once, with its constant's name and the text `name()` returns for it.

/// Declares an open code point newtype: the struct, a documented `pub const` for each listed
/// value, and `pub const fn name(self) -> Option<&'static str>` that gives each listed value's
/// text and `None` for every other value.
///
/// The caller writes the struct's doc comment and attributes (its `derive` list included) and the
/// doc comment of `name`; `Display` and any other methods stay hand-written beside the call.
///
/// ```text
/// code_point! {
///     /// LS_RJT reason code (FC-LS-3). Open: any value is data.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
///     pub struct LsRjtReason(pub u8) {
///         /// Invalid ELS command code.
///         INVALID_COMMAND_CODE = 0x01 => "invalid command code",
///         /// Logical error: the request is invalid in this state or with these parameters.
///         LOGICAL_ERROR = 0x03 => "logical error",
///     }
///
///     /// The standard's description, or `None` for an unknown code.
///     pub const fn name;
/// }
/// ```
///
/// Values are literals, so a value listed twice is an unreachable pattern in `name`, which
/// `cargo clippy -- -D warnings` rejects.
macro_rules! code_point {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident($field_vis:vis $repr:ty) {
            $(
                $(#[$const_attr:meta])*
                $const_name:ident = $value:literal => $text:literal,
            )*
        }

        $(#[$name_attr:meta])*
        pub const fn name;
    ) => {
        $(#[$attr])*
        $vis struct $name($field_vis $repr);

        impl $name {
            $(
                $(#[$const_attr])*
                pub const $const_name: $name = $name($value);
            )*

            $(#[$name_attr])*
            pub const fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    code_point! {
        /// A code point for the tests.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct Example(pub u16) {
            /// One.
            ONE = 0x0001 => "one",
            /// Big.
            BIG = 0x8001 => "big",
        }

        /// The text, for known values.
        pub const fn name;
    }

    #[test]
    fn test_constants_and_names() {
        assert_eq!(Example::ONE, Example(1));
        assert_eq!(Example::BIG.0, 0x8001);
        assert_eq!(Example::ONE.name(), Some("one"));
        assert_eq!(Example(0x8001).name(), Some("big"));
        assert_eq!(Example(2).name(), None);
        assert_eq!(Example::default().name(), None);
        assert!(Example::ONE < Example::BIG);
    }

    #[test]
    fn test_name_is_const() {
        const BIG: Option<&str> = Example::BIG.name();
        assert_eq!(BIG, Some("big"));
    }
}
