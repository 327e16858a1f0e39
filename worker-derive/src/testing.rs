//! What the property tests share: their configuration and generators of
//! token streams a compiler could hand a macro.
//!
//! Tokens are generated as a description ([`Tok`]) and built into a
//! `TokenStream` inside the test, so a failing case prints as source text
//! and can be shrunk. Only shapes real source (or a `macro_rules!` fragment)
//! can produce are generated: a `'` only as the start of a lifetime, joint
//! punctuation only inside multi-character operators, no negative literals.

use std::fmt;
use std::str::FromStr;

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use proptest::prelude::*;
use proptest::test_runner::{Config, contextualize_config};

/// `cases` per property unless `PROPTEST_CASES` (or another `PROPTEST_*`
/// variable) says otherwise, so a longer run needs no code change.
pub(crate) fn config(cases: u32) -> Config {
    contextualize_config(Config::with_cases(cases))
}

/// One token tree, described.
#[derive(Clone, Debug)]
pub(crate) enum Tok {
    Ident(String),
    /// `r#…`.
    RawIdent(String),
    /// `'a`.
    Lifetime(String),
    /// One or more punctuation characters lexed as one operator: `=`, `->`.
    Op(&'static str),
    Str(String),
    /// Any other literal, as source text: `5`, `1.5e3`, `b"x"`, `'c'`.
    Lit(&'static str),
    Group(Delimiter, Vec<Tok>),
    /// Source text a generator wrote, lexed as is; must be balanced.
    Source(String),
}

/// A token stream, printed as source text when a case fails.
#[derive(Clone)]
pub(crate) struct Tokens(pub(crate) Vec<Tok>);

impl Tokens {
    pub(crate) fn source(source: impl Into<String>) -> Self {
        Tokens(vec![Tok::Source(source.into())])
    }

    pub(crate) fn stream(&self) -> TokenStream {
        stream(&self.0)
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.stream())
    }
}

fn stream(toks: &[Tok]) -> TokenStream {
    let mut out = TokenStream::new();
    for tok in toks {
        match tok {
            Tok::Ident(name) => out.extend([TokenTree::Ident(Ident::new(name, Span::call_site()))]),
            Tok::RawIdent(name) => {
                out.extend([TokenTree::Ident(Ident::new_raw(name, Span::call_site()))]);
            }
            Tok::Lifetime(name) => out.extend([
                TokenTree::Punct(Punct::new('\'', Spacing::Joint)),
                TokenTree::Ident(Ident::new(name, Span::call_site())),
            ]),
            Tok::Op(op) => {
                let chars: Vec<char> = op.chars().collect();
                for (index, &c) in chars.iter().enumerate() {
                    let spacing = if index + 1 < chars.len() {
                        Spacing::Joint
                    } else {
                        Spacing::Alone
                    };
                    out.extend([TokenTree::Punct(Punct::new(c, spacing))]);
                }
            }
            Tok::Str(text) => out.extend([TokenTree::Literal(Literal::string(text))]),
            Tok::Lit(text) => out.extend([TokenTree::Literal(literal(text))]),
            Tok::Group(delimiter, inner) => {
                out.extend([TokenTree::Group(Group::new(*delimiter, stream(inner)))]);
            }
            Tok::Source(source) => match source.parse::<TokenStream>() {
                Ok(tokens) => out.extend(tokens),
                Err(err) => panic!("the generator wrote unbalanced source {source:?}: {err}"),
            },
        }
    }
    out
}

fn literal(text: &str) -> Literal {
    match Literal::from_str(text) {
        Ok(literal) => literal,
        Err(err) => panic!("bad literal in the test pool {text:?}: {err}"),
    }
}

/// Words the macros treat specially, keywords, and some ordinary names.
const WORDS: &[&str] = &[
    "name",
    "timeout",
    "blocking",
    "true",
    "false",
    "async",
    "fn",
    "const",
    "unsafe",
    "extern",
    "pub",
    "crate",
    "self",
    "Self",
    "super",
    "impl",
    "dyn",
    "where",
    "mut",
    "move",
    "struct",
    "mod",
    "type",
    "gen",
    "union",
    "WorkerContext",
    "Result",
    "Option",
    "Duration",
    "_",
    "send_email",
    "café",
    "x",
];

const RAW_WORDS: &[&str] = &["type", "async", "match", "fn", "gen"];

const OPS: &[&str] = &[
    "=", ",", ",", ",", ";", ":", "::", "->", "=>", "#", "!", "&", "*", "<", ">", "-", "+", ".",
    "..", "..=", "...", "?", "@", "|", "$", "/", "%", "^", "~", "==", "<=", "&&",
];

const LITERALS: &[&str] = &[
    "0",
    "5",
    "42u8",
    "18446744073709551615",
    "1.5",
    "1e3",
    "0x1F",
    "'c'",
    "'\\n'",
    "b'x'",
    "b\"bytes\"",
    "c\"cstr\"",
    "r\"raw\"",
    "r#\"5s\"#",
    "\"\\u{7}\"",
    "\"a\\tb\"",
    "\"\"",
];

/// Strings a worker name or timeout might be written as, plus anything.
pub(crate) fn interesting_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&[
            "", "5s", "0s", "500ms", "1m30s", "1s500ms", "7\u{b5}s", "5 s", "5x", "1.5s", "30s1m",
            "99999999999999999999h", "send-email", "send email", "tab\there", "nl\n", "bell\u{7}",
            "nbsp\u{a0}x", "é", "src/workers",
        ][..])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn ident() -> impl Strategy<Value = Tok> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(|w| Tok::Ident(w.to_owned())),
        2 => "[a-zA-Z_][a-zA-Z0-9_]{0,6}".prop_map(Tok::Ident),
        1 => prop::sample::select(RAW_WORDS).prop_map(|w| Tok::RawIdent(w.to_owned())),
        1 => "[a-z]{1,3}".prop_map(Tok::Lifetime),
    ]
}

/// One token tree whose string literals come from `strings`.
pub(crate) fn tok_with(strings: BoxedStrategy<String>) -> impl Strategy<Value = Tok> {
    let leaf = prop_oneof![
        4 => ident(),
        4 => prop::sample::select(OPS).prop_map(Tok::Op),
        2 => strings.prop_map(Tok::Str),
        1 => prop::sample::select(LITERALS).prop_map(Tok::Lit),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        (
            prop::sample::select(
                &[
                    Delimiter::Parenthesis,
                    Delimiter::Bracket,
                    Delimiter::Brace,
                    Delimiter::None,
                ][..],
            ),
            prop::collection::vec(inner, 0..5),
        )
            .prop_map(|(delimiter, inner)| Tok::Group(delimiter, inner))
    })
}

/// Any sequence of token trees, string literals from `strings`.
pub(crate) fn garbage_with(strings: BoxedStrategy<String>) -> impl Strategy<Value = Tokens> {
    prop::collection::vec(tok_with(strings), 0..10).prop_map(Tokens)
}

/// Any sequence of token trees.
pub(crate) fn garbage() -> impl Strategy<Value = Tokens> {
    garbage_with(interesting_string().boxed())
}

mod tests {
    use super::*;

    #[test]
    fn every_pooled_literal_is_a_literal() {
        for text in LITERALS {
            assert_eq!(literal(text).to_string(), *text);
        }
    }

    #[test]
    fn operators_print_as_written() {
        for op in OPS {
            assert_eq!(stream(&[Tok::Op(op)]).to_string(), *op);
        }
    }
}
