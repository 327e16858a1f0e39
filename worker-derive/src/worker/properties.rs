//! Properties of `#[worker]` over generated input: whatever the attribute's
//! arguments and the item, the macro returns tokens (the expansion, or the
//! item and `compile_error!`s) and never panics; and a name is accepted
//! exactly when the documented rule says so.

use std::panic::{AssertUnwindSafe, catch_unwind};

use proc_macro2::{Delimiter, Literal, TokenStream, TokenTree};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{expand, try_expand};
use crate::testing::{self, Tok, Tokens, garbage, interesting_string};

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(options)
}

/// Mostly `valid`, sometimes one of `wrong`: each part of a generated input
/// is usually right, so a fair share of whole inputs is right too and the
/// expansion itself gets checked, not only the errors.
fn mostly(
    valid: &'static str,
    wrong: &'static [&'static str],
) -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(valid), 1 => pick(wrong)]
}

/// `fn` items with every modifier, generics, parameters, receivers, return
/// types and bodies in any combination, most of them wrong for a worker.
fn fn_source() -> impl Strategy<Value = String> {
    let modifiers = (
        pick(&[
            "",
            "#[inline]",
            "/// Docs.",
            "#[cfg(all())] #[allow(unused)]",
        ]),
        pick(&["", "pub", "pub(crate)"]),
        mostly("", &["const"]),
        pick(&["", "async"]),
        mostly("", &["unsafe"]),
        mostly("", &["extern \"C\"", "extern"]),
    );
    let name = pick(&[
        "job",
        "send_email",
        "r#type",
        "__",
        "_private_job",
        "café",
        "ctx",
        "payload",
        "output",
        "__worker_core_shim",
    ]);
    let generics = mostly("", &["<T>", "<'a>", "<const N: usize>", "<T: Send>", "<>"]);
    let context = prop_oneof![
        3 => pick(&["ctx: WorkerContext", "mut ctx: worker_core::WorkerContext", "_: WorkerContext"]),
        1 => param(),
    ];
    let payloads = prop_oneof![
        3 => prop::collection::vec(pick(&["p: Email", "p: Option<Email>", "(a, b): (u8, u8)"]), 0..2),
        1 => prop::collection::vec(param(), 0..3),
    ];
    let params = (
        prop::option::weighted(0.95, context),
        payloads,
        any::<bool>(),
    )
        .prop_map(|(context, payloads, trailing)| {
            let mut list: Vec<&str> = context.into_iter().collect();
            list.extend(payloads);
            let mut list = list.join(", ");
            if trailing && !list.is_empty() {
                list.push(',');
            }
            list
        });
    let output = prop_oneof![
        3 => pick(&["-> Result<()>", "-> worker_core::Result<()>"]),
        1 => pick(&[
            "",
            "-> Result<u32>",
            "-> Result",
            "-> ()",
            "-> impl Future<Output = ()>",
            "-> !",
            "-> Self",
            "-> <T as Tr>::Result",
            "-> &'static Result<()>",
        ]),
    ];
    let rest = (
        mostly("", &["where T: Send", "where", "where Self: Sized,"]),
        pick(&[
            "{ Ok(()) }",
            "{}",
            "{ let = ; }",
            ";",
            "{ async {} }",
            "{ ctx; payload; }",
        ]),
    );
    (modifiers, name, generics, params, output, rest).prop_map(
        |((attrs, vis, constness, asyncness, unsafety, abi), name, generics, params, output, (clause, body))| {
            format!(
                "{attrs} {vis} {constness} {asyncness} {unsafety} {abi} fn {name}{generics}({params}) {output} {clause} {body}"
            )
        },
    )
}

/// Any parameter, mostly not a worker's.
fn param() -> impl Strategy<Value = &'static str> {
    pick(&[
        "ctx: WorkerContext",
        "mut ctx: worker_core::WorkerContext",
        "ctx: &WorkerContext",
        "ctx: &mut WorkerContext",
        "ctx: WorkerContext<T>",
        "ctx: <T as Tr>::WorkerContext",
        "&self",
        "self",
        "mut self: Box<Self>",
        "p: Email",
        "p: Option<Email>",
        "p: impl Send",
        "p: Vec<impl Send>",
        "(a, b): (u8, u8)",
        "_: T",
        "p: [u8; 4]",
        "f: fn(u8) -> u8",
        "p: dyn Fn()",
        "...",
        "args: ...",
        "#[cfg(test)] p: u8",
    ])
}

/// The item under the attribute: a function in every shape, some other
/// item, or arbitrary tokens.
fn item() -> impl Strategy<Value = Tokens> {
    prop_oneof![
        6 => fn_source().prop_map(Tokens::source),
        1 => pick(&[
            "", "struct S;", "impl X {}", "mod m {}", "const X: u8 = 1;", "enum E {}",
            "trait T {}", "use a::b;", "type T = u8;", "extern crate x;", "macro_rules! m {}",
            "static S: u8 = 0;", "union U { a: u8 }", "extern \"C\" {}", "fn", "async fn f",
        ])
        .prop_map(Tokens::source),
        2 => garbage(),
    ]
}

/// One argument: a name literal, `key = value`, a bare key, or anything.
fn argument() -> impl Strategy<Value = Vec<Tok>> {
    let key = prop_oneof![
        3 => pick(&["name", "timeout", "blocking"]).prop_map(|k| Tok::Ident(k.to_owned())),
        1 => pick(&["retries", "priority", "unique", "rate", "limit_by", "key_rate", "Timeout", "_", "true", "r"]).prop_map(|k| Tok::Ident(k.to_owned())),
    ];
    let value = prop_oneof![
        3 => interesting_string().prop_map(|s| vec![Tok::Str(s)]),
        2 => pick(&["true", "false", "yes"]).prop_map(|b| vec![Tok::Ident(b.to_owned())]),
        1 => pick(&["5", "1.5", "b\"5s\"", "r\"5s\"", "'c'"]).prop_map(|l| vec![Tok::Lit(l)]),
        1 => Just(Vec::new()),
        1 => Just(vec![
            Tok::Ident("Duration".to_owned()),
            Tok::Op("::"),
            Tok::Ident("from_secs".to_owned()),
            Tok::Group(Delimiter::Parenthesis, vec![Tok::Lit("5")]),
        ]),
        1 => Just(vec![Tok::Op("!"), Tok::Ident("false".to_owned())]),
        1 => garbage().prop_map(|tokens| tokens.0),
    ];
    let setting = (key.clone(), value).prop_map(|(key, value)| {
        let mut tokens = vec![key, Tok::Op("=")];
        tokens.extend(value);
        tokens
    });
    let argument = prop_oneof![
        6 => valid_argument(),
        2 => interesting_string().prop_map(|s| vec![Tok::Str(s)]),
        4 => setting,
        2 => key.prop_map(|key| vec![key]),
        1 => garbage().prop_map(|tokens| tokens.0),
    ];
    // What a `macro_rules!` fragment delivers: the same, in an invisible group.
    (argument, prop::bool::weighted(0.1)).prop_map(|(argument, invisible)| {
        if invisible {
            vec![Tok::Group(Delimiter::None, argument)]
        } else {
            argument
        }
    })
}

/// An argument `#[worker]` accepts on its own.
fn valid_argument() -> impl Strategy<Value = Vec<Tok>> {
    let name = || pick(&["send-email", "a", "ré-essai", "x.y"]).prop_map(str::to_owned);
    let timeout =
        pick(&["5s", "500ms", "1m30s", "1h2m3s4ms5us6ns", "7\u{b5}s"]).prop_map(str::to_owned);
    prop_oneof![
        name().prop_map(|name| vec![Tok::Str(name)]),
        name().prop_map(|name| vec![Tok::Ident("name".to_owned()), Tok::Op("="), Tok::Str(name)]),
        timeout.prop_map(|t| vec![Tok::Ident("timeout".to_owned()), Tok::Op("="), Tok::Str(t)]),
        Just(vec![Tok::Ident("blocking".to_owned())]),
        priority().prop_map(|p| {
            let mut tokens = vec![Tok::Ident("priority".to_owned()), Tok::Op("=")];
            tokens.extend(p);
            tokens
        }),
        pick(&["true", "false"]).prop_map(|b| vec![
            Tok::Ident("blocking".to_owned()),
            Tok::Op("="),
            Tok::Ident(b.to_owned()),
        ]),
    ]
}

/// A valid priority's value: `5`, or `-1` as a minus and a literal, the
/// way source code lexes it.
fn priority() -> impl Strategy<Value = Vec<Tok>> {
    pick(&["5", "0", "-1", "2147483647", "-2147483648"]).prop_map(|n| match n.strip_prefix('-') {
        Some(digits) => vec![Tok::Op("-"), Tok::Lit(digits)],
        None => vec![Tok::Lit(n)],
    })
}

/// Arguments separated by commas, with the odd missing, doubled or
/// trailing one.
fn arguments() -> impl Strategy<Value = Tokens> {
    let separator = pick(&[",", ",", ",", ",", "", ",,"]);
    prop::collection::vec((argument(), separator), 0..4).prop_map(|arguments| {
        let mut tokens = Vec::new();
        for (argument, separator) in arguments {
            tokens.extend(argument);
            tokens.extend(separator.chars().map(|_| Tok::Op(",")));
        }
        Tokens(tokens)
    })
}

/// A worker every rule accepts: options in any order, each at most once,
/// `async` exactly when not `blocking`. Returns the attribute, the item, and
/// whether it is blocking.
fn valid_worker() -> impl Strategy<Value = (Tokens, String, bool)> {
    let name = prop::option::of((pick(&["send-email", "a", "ré-essai", "x.y"]), any::<bool>()));
    let timeout = prop::option::of(pick(&[
        "5s",
        "500ms",
        "1m30s",
        "1h2m3s4ms5us6ns",
        "7\u{b5}s",
        "1ns",
    ]));
    let blocking = prop::option::of(pick(&["", "true", "false"]));
    let priority = prop::option::of(priority());
    let rate = prop::option::of(pick(&[
        "100/1m",
        "10/1s",
        "3/1m30s",
        "1/1ms",
        "2/1500\u{b5}s",
    ]));
    let options = (
        name,
        timeout,
        blocking,
        priority,
        rate,
        0..4_usize,
        any::<bool>(),
    );
    let function = (
        pick(&["", "pub", "pub(crate)", "/// Docs.\n#[inline] pub"]),
        pick(&[
            "job",
            "send_email",
            "r#type",
            "_private_job",
            "café",
            "ctx",
            "payload",
            "output",
        ]),
        pick(&[
            "ctx: WorkerContext",
            "mut ctx: worker_core::WorkerContext",
            "_: WorkerContext",
            "ctx: (WorkerContext)",
        ]),
        prop::option::of(pick(&[
            "p: Email",
            "mut p: Option<Email>",
            "(a, b): (u8, u8)",
            "_: Vec<String>",
        ])),
        pick(&["Result<()>", "worker_core::Result<()>", "Result<(), Error>"]),
        pick(&["{ Ok(()) }", "{ let _ = ctx; todo!() }"]),
    );
    (options, function).prop_map(
        |(
            (name, timeout, blocking, priority, rate, order, trailing),
            (vis, ident, context, payload, output, body),
        )| {
            let mut keyed: Vec<Vec<Tok>> = Vec::new();
            let mut positional = None;
            if let Some((name, as_option)) = name {
                if as_option {
                    keyed.push(vec![
                        Tok::Ident("name".to_owned()),
                        Tok::Op("="),
                        Tok::Str(name.to_owned()),
                    ]);
                } else {
                    positional = Some(vec![Tok::Str(name.to_owned())]);
                }
            }
            if let Some(timeout) = timeout {
                keyed.push(vec![
                    Tok::Ident("timeout".to_owned()),
                    Tok::Op("="),
                    Tok::Str(timeout.to_owned()),
                ]);
            }
            let is_blocking = blocking.is_some_and(|value| value != "false");
            if let Some(value) = blocking {
                let mut flag = vec![Tok::Ident("blocking".to_owned())];
                if !value.is_empty() {
                    flag.extend([Tok::Op("="), Tok::Ident(value.to_owned())]);
                }
                keyed.push(flag);
            }
            if let Some(priority) = priority {
                let mut setting = vec![Tok::Ident("priority".to_owned()), Tok::Op("=")];
                setting.extend(priority);
                keyed.push(setting);
            }
            if let Some(rate) = rate {
                keyed.push(vec![
                    Tok::Ident("rate".to_owned()),
                    Tok::Op("="),
                    Tok::Str(rate.to_owned()),
                ]);
            }
            // Options in any order (a rotation is enough to move each first).
            let len = keyed.len().max(1);
            keyed.rotate_left(order % len);
            let mut tokens = Vec::new();
            for (index, argument) in positional.into_iter().chain(keyed).enumerate() {
                if index > 0 {
                    tokens.push(Tok::Op(","));
                }
                tokens.extend(argument);
            }
            if trailing && !tokens.is_empty() {
                tokens.push(Tok::Op(","));
            }
            let asyncness = if is_blocking { "" } else { "async" };
            let params = match payload {
                Some(payload) => format!("{context}, {payload}"),
                None => context.to_owned(),
            };
            let item = format!("{vis} {asyncness} fn {ident}({params}) -> {output} {body}");
            (Tokens(tokens), item, is_blocking)
        },
    )
}

/// `expand` returned instead of panicking; its output starts with the item
/// as given, and is either the expansion (valid Rust when the item is) or
/// the item and `compile_error!`s, never a mix.
fn returns_tokens(attr: TokenStream, item: TokenStream) -> Result<(), TestCaseError> {
    let given = item.clone();
    let Ok(out) = catch_unwind(AssertUnwindSafe(|| expand(attr, item))) else {
        return Err(TestCaseError::fail("#[worker] panicked"));
    };
    let text = out.to_string();
    prop_assert!(
        text.starts_with(&given.to_string()),
        "the item is not kept first: {text}"
    );
    let failed = text.contains("compile_error");
    let registered = text.contains("WorkerRegistration");
    prop_assert!(failed != registered, "{text}");
    if registered && syn::parse2::<syn::File>(given).is_ok() {
        if let Err(err) = syn::parse2::<syn::File>(out) {
            return Err(TestCaseError::fail(format!(
                "the expansion is not valid Rust: {err}\n{text}"
            )));
        }
    }
    Ok(())
}

/// Everything `char::is_whitespace` accepts, some that look alike but
/// aren't, and every kind of control character.
const WHITESPACE_AND_CONTROL: &[char] = &[
    ' ', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
    '\u{2005}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}', '\u{200b}',
    '\u{200d}', '\u{feff}', '\u{180e}', '\0', '\u{7}', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}',
];

fn name() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => prop::sample::select(&['a', 'z', '-', '_', '.', '0', 'é', '日'][..]),
        2 => prop::sample::select(WHITESPACE_AND_CONTROL),
        2 => any::<char>(),
    ];
    prop::collection::vec(c, 0..6).prop_map(|chars| chars.into_iter().collect())
}

/// The documented rule, written out independently of the macro.
fn documented_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

const VALID_FN: &str = "async fn job(ctx: WorkerContext) -> Result<()> { Ok(()) }";

proptest! {
    #![proptest_config(testing::config(512))]

    #[test]
    fn worker_never_panics_on_arguments_and_items(attr in arguments(), item in item()) {
        returns_tokens(attr.stream(), item.stream())?;
    }

    #[test]
    fn worker_never_panics_on_arbitrary_tokens(attr in garbage(), item in garbage()) {
        returns_tokens(attr.stream(), item.stream())?;
    }

    #[test]
    fn every_valid_worker_expands_to_valid_rust((attr, item, blocking) in valid_worker()) {
        let item: TokenStream = match item.parse() {
            Ok(item) => item,
            Err(err) => return Err(TestCaseError::fail(format!("bad generated item {item:?}: {err}"))),
        };
        let out = match try_expand(attr.stream(), item) {
            Ok(out) => out,
            Err(err) => return Err(TestCaseError::fail(format!("rejected: {err}"))),
        };
        let text = out.to_string();
        prop_assert_eq!(text.contains("run_blocking"), blocking, "{}", text);
        if let Err(err) = syn::parse2::<syn::File>(out) {
            return Err(TestCaseError::fail(format!("not valid Rust: {err}\n{text}")));
        }
    }

    #[test]
    fn a_name_is_accepted_exactly_when_the_docs_say(name in name(), as_option in any::<bool>()) {
        let literal = TokenTree::Literal(Literal::string(&name));
        let attr: TokenStream = if as_option {
            let mut attr: TokenStream = "name =".parse().unwrap_or_default();
            attr.extend([literal]);
            attr
        } else {
            literal.into()
        };
        let item: TokenStream = VALID_FN.parse().unwrap_or_default();
        let accepted = try_expand(attr, item).is_ok();
        prop_assert_eq!(accepted, documented_name(&name), "{:?}", name);
    }
}
