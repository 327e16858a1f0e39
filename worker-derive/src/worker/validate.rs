//! Checks that the annotated function can be a worker and builds the
//! [`Worker`] that expansion works from. Every problem is reported to the
//! context at the token that caused it; nothing stops at the first one.

use std::time::Duration;

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::token::Comma;
use syn::{
    FnArg, GenericArgument, LitStr, PatType, PathArguments, ReturnType, Safety, Signature, Type,
    Visibility,
};

use super::parse::{Args, PayloadField};
use crate::ctxt::Ctxt;
use crate::fn_item::FnHead;
use crate::rate::Rate;

/// The signature every message points to.
pub(super) const EXPECTED: &str =
    "expected `async fn name(ctx: WorkerContext[, payload: T]) -> Result<()>`";

/// The same for `#[worker(blocking)]`, which takes a plain `fn`.
pub(super) const EXPECTED_BLOCKING: &str =
    "expected `fn name(ctx: WorkerContext[, payload: T]) -> Result<()>`";

pub(super) const MUST_BE_ASYNC: &str = "#[worker] functions must be `async fn`; for synchronous code, #[worker(blocking)] runs a plain `fn` on tokio's blocking pool";

pub(super) const BLOCKING_IS_NOT_ASYNC: &str =
    "#[worker(blocking)] runs a plain `fn` on tokio's blocking pool; remove `async`";

/// A function that passed every check: all expansion needs.
pub(super) struct Worker<'a> {
    pub(super) name: LitStr,
    pub(super) options: Options,
    /// Run on tokio's blocking pool: the function is a plain `fn`.
    pub(super) blocking: bool,
    /// The function's visibility, which its typed call site shares.
    pub(super) vis: &'a Visibility,
    pub(super) ident: &'a Ident,
    pub(super) context: &'a Type,
    pub(super) payload: Option<&'a Type>,
    /// The whole return type, `Result<…>`.
    pub(super) output: &'a Type,
    /// `T` of `Result<T>`, when the return type spells it out: what the
    /// typed call site reads the output back as. `None` (a `Result` alias
    /// without arguments, or `impl Trait`): read back as JSON.
    pub(super) returns: Option<&'a Type>,
}

/// The run policy, as `worker_core::WorkerOptions` will hold it.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Options {
    pub(super) timeout: Option<Duration>,
    pub(super) retries: Option<u32>,
    pub(super) backoff: Option<Duration>,
    pub(super) backoff_max: Option<Duration>,
    pub(super) concurrency: Option<usize>,
    pub(super) queue_limit: Option<usize>,
    pub(super) global_concurrency: Option<usize>,
    pub(super) rate: Option<Rate>,
    /// Checked against the payload type by the expansion.
    pub(super) limit_by: Option<PayloadField>,
    pub(super) key_concurrency: Option<usize>,
    pub(super) key_rate: Option<Rate>,
    pub(super) priority: Option<i32>,
    /// Checked against the payload type by the expansion.
    pub(super) unique: Option<PayloadField>,
    pub(super) every: Option<Duration>,
    pub(super) cron: Option<String>,
    pub(super) tz: Option<String>,
    pub(super) local: bool,
}

/// Checks `signature` and `args`; `None` exactly when the context holds an
/// error (including ones the argument parser reported before).
pub(super) fn worker<'a>(args: Args, head: &'a FnHead, cx: &mut Ctxt) -> Option<Worker<'a>> {
    let signature = &head.signature;
    // Every check runs before any result is looked at, so all problems are
    // reported together.
    // An unreadable `blocking = …` was already reported; judge the function
    // by the mode its `async` (or lack of it) says was meant.
    let given = args.blocking.given();
    let blocking = given.unwrap_or(signature.asyncness.is_none());
    let expected = if blocking {
        EXPECTED_BLOCKING
    } else {
        EXPECTED
    };
    modifiers(signature, given, cx);
    generics(signature, cx);
    let params = params(signature, expected, cx);
    if let Some((_, payload)) = params {
        field_needs_payload("unique", args.unique.value(), payload, blocking, cx);
        field_needs_payload("limit_by", args.limit_by.value(), payload, blocking, cx);
    }
    let output = output(signature, expected, cx);
    options_fit_together(&args, cx);
    let name = name(args.name.get(), &signature.ident, cx);
    let ((context, payload), output, name) = (params?, output?, name?);
    if cx.has_errors() {
        return None;
    }
    Some(Worker {
        name,
        options: Options {
            timeout: args.timeout.get(),
            retries: args.retries.get(),
            backoff: args.backoff.get(),
            backoff_max: args.backoff_max.get(),
            concurrency: args.concurrency.get(),
            queue_limit: args.queue_limit.get(),
            global_concurrency: args.global_concurrency.get(),
            rate: args.rate.get(),
            limit_by: args.limit_by.get(),
            key_concurrency: args.key_concurrency.get(),
            key_rate: args.key_rate.get(),
            priority: args.priority.get(),
            unique: args.unique.get(),
            every: args.every.get(),
            cron: args.cron.get(),
            tz: args.tz.get(),
            local: args.local.is_on(),
        },
        blocking,
        vis: &head.vis,
        ident: &signature.ident,
        context,
        payload,
        output,
        returns: ok_type(output),
    })
}

/// `T` in `Result<T>` or `Result<T, E>` (any path ending in `Result`), unless
/// it is an `impl Trait` or `_`, which can't be named outside the function.
fn ok_type(output: &Type) -> Option<&Type> {
    let Type::Path(path) = ungroup(output) else {
        return None;
    };
    let PathArguments::AngleBracketed(args) = &path.path.segments.last()?.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(Type::Infer(_)) => None,
        GenericArgument::Type(ok) if find_impl(ok.to_token_stream()).is_none() => Some(ok),
        _ => None,
    }
}

/// Options that only mean something with another one, or contradict it.
/// Reported at the key that needs the other; `WorkerOptions` checks the
/// same at startup for `register_with`.
fn options_fit_together(args: &Args, cx: &mut Ctxt) {
    if let Some(span) = args.queue_limit.span() {
        let limited = [
            args.concurrency.span(),
            args.global_concurrency.span(),
            args.rate.span(),
            args.key_concurrency.span(),
            args.key_rate.span(),
        ];
        if limited.iter().all(Option::is_none) {
            cx.error(
                span,
                "`queue_limit` needs `concurrency` or a limit (`global_concurrency`, `rate`, `key_concurrency`, `key_rate`): it bounds the runs waiting for a slot, like #[worker(concurrency = 4, queue_limit = 100)]",
            );
        }
    }
    if let Some(span) = args.limit_by.span() {
        if args.every.span().is_some() || args.cron.span().is_some() {
            cx.error(
                span,
                "`limit_by` can't go with `every` or `cron`: a scheduled run has no payload to read the field from",
            );
        }
    }
    if let (Some(_), Some(span)) = (args.every.span(), args.cron.span()) {
        cx.error(
            span,
            "`every` and `cron` can't both be given: a worker has one schedule",
        );
    }
    if let (Some(span), None) = (args.tz.span(), args.cron.span()) {
        cx.error(
            span,
            "`tz` needs `cron`: it is the zone the cron expression is read in, like #[worker(cron = \"0 3 * * *\", tz = \"Europe/Berlin\")]",
        );
    }
    if args.retries.span().is_none() {
        for (key, span) in [
            ("backoff", args.backoff.span()),
            ("backoff_max", args.backoff_max.span()),
        ] {
            if let Some(span) = span {
                cx.error(
                    span,
                    format!("`{key}` needs `retries`: without them nothing is retried, like #[worker(retries = 3, {key} = \"1s\")]"),
                );
            }
        }
    }
    if let (Some(first), Some(max), Some(span)) = (
        args.backoff.value(),
        args.backoff_max.value(),
        args.backoff_max.span(),
    ) {
        if max < first {
            cx.error(
                span,
                format!(
                    "`backoff_max` ({max:?}) is shorter than `backoff` ({first:?}): the cap must be at least the first delay"
                ),
            );
        }
    }
    keyed_limits_fit_together(args, cx);
}

/// `limit_by` and the `key_*` limits only mean something together: the
/// field says what a key is, the limits say what each key gets.
fn keyed_limits_fit_together(args: &Args, cx: &mut Ctxt) {
    let key_limits = [
        (
            "key_concurrency",
            "key_concurrency = 1",
            args.key_concurrency.span(),
        ),
        ("key_rate", "key_rate = \"10/1m\"", args.key_rate.span()),
    ];
    match args.limit_by.span() {
        None => {
            for (key, example, span) in key_limits {
                if let Some(span) = span {
                    cx.error(
                        span,
                        format!("`{key}` needs `limit_by`: it applies to each value of the payload field that `limit_by` names, like #[worker(limit_by = \"account_id\", {example})]"),
                    );
                }
            }
        }
        Some(span) if key_limits.iter().all(|(_, _, span)| span.is_none()) => cx.error(
            span,
            "`limit_by` needs `key_concurrency` or `key_rate`: it names the payload field whose values those limits apply to, like #[worker(limit_by = \"account_id\", key_concurrency = 1)]; to limit the worker as a whole, use `global_concurrency` or `rate`",
        ),
        Some(_) => {}
    }
}

/// `unique` and `limit_by` name a field of the payload, so without a
/// payload there is nothing for them to name. Reported at the field's
/// literal.
fn field_needs_payload(
    key: &str,
    field: Option<&PayloadField>,
    payload: Option<&Type>,
    blocking: bool,
    cx: &mut Ctxt,
) {
    if let (Some(field), None) = (field, payload) {
        let fn_token = if blocking { "fn" } else { "async fn" };
        cx.error(
            field.access.span(),
            format!(
                "`{key}` needs a typed payload: it names a field of the payload, and this worker takes only the `WorkerContext`; add a payload whose type has a field `{}`, like `{fn_token} name(ctx: WorkerContext, payload: T)`",
                field.name
            ),
        );
    }
}

/// `async` exactly when not `blocking` (unchecked if `blocking` is unknown);
/// none of the other modifiers.
fn modifiers(signature: &Signature, blocking: Option<bool>, cx: &mut Ctxt) {
    match (&signature.asyncness, blocking) {
        (Some(asyncness), Some(true)) => cx.error(asyncness.span, BLOCKING_IS_NOT_ASYNC),
        (None, Some(false)) => cx.error(signature.fn_token.span, MUST_BE_ASYNC),
        _ => {}
    }
    if let Some(constness) = &signature.constness {
        cx.error(constness.span, "#[worker] functions can't be `const`");
    }
    if let Safety::Unsafe(unsafety) = &signature.safety {
        cx.error(unsafety.span, "#[worker] functions can't be `unsafe`");
    }
    if let Some(abi) = &signature.abi {
        cx.error_spanned_by(abi, "#[worker] functions can't be `extern`");
    }
    if let Some(variadic) = &signature.variadic {
        cx.error(
            variadic.dots.spans[0],
            "#[worker] functions can't be variadic",
        );
    }
}

fn generics(signature: &Signature, cx: &mut Ctxt) {
    let generics = &signature.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            "#[worker] functions can't be generic; the runtime calls them with concrete types",
        );
    }
    if let Some(where_clause) = &generics.where_clause {
        cx.error_spanned_by(
            where_clause,
            "#[worker] functions can't have a `where` clause",
        );
    }
    for arg in &signature.inputs {
        if let FnArg::Typed(arg) = arg {
            if let Some(impl_token) = find_impl(arg.ty.to_token_stream()) {
                cx.error(
                    impl_token,
                    "#[worker] parameters can't be `impl Trait`, which makes the function generic; name a concrete type",
                );
            }
        }
    }
}

/// The first `impl` keyword anywhere in a type, including inside generic
/// arguments (`Vec<impl Trait>`).
fn find_impl(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().find_map(|token| match token {
        TokenTree::Ident(ident) if ident == "impl" => Some(ident.span()),
        TokenTree::Group(group) => find_impl(group.stream()),
        _ => None,
    })
}

/// The context type and the optional payload type.
fn params<'a>(
    signature: &'a Signature,
    expected: &str,
    cx: &mut Ctxt,
) -> Option<(&'a Type, Option<&'a Type>)> {
    if let Some(receiver) = signature.receiver() {
        cx.error(
            receiver.self_token.span,
            format!(
                "#[worker] functions can't take `self`; a worker is a free function, {expected}"
            ),
        );
    }
    let typed: Vec<&PatType> = typed_params(&signature.inputs);
    let Some((context, rest)) = typed.split_first() else {
        cx.error(
            signature.paren_token.span.join(),
            format!("#[worker] functions take a `WorkerContext` parameter; {expected}"),
        );
        return None;
    };
    let context_ok = is_worker_context(&context.ty, expected, cx);
    let payload = match rest {
        [] => None,
        [payload] => Some(&*payload.ty),
        [_, extra @ ..] => {
            let extra: TokenStream = extra.iter().map(|arg| arg.to_token_stream()).collect();
            cx.error_spanned_by(
                extra,
                format!(
                    "too many parameters: a worker takes the `WorkerContext` and at most one payload; {expected}"
                ),
            );
            return None;
        }
    };
    context_ok.then_some((&*context.ty, payload))
}

fn typed_params(inputs: &Punctuated<FnArg, Comma>) -> Vec<&PatType> {
    inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(arg) => Some(arg),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// Accepts `WorkerContext` and any path ending in it
/// (`worker_core::WorkerContext`); whether it's the right type is left to the
/// compiler, which the expansion points at this type.
fn is_worker_context(ty: &Type, expected: &str, cx: &mut Ctxt) -> bool {
    match ungroup(ty) {
        Type::Reference(reference) => {
            cx.error_spanned_by(
                reference,
                format!("take the `WorkerContext` by value, not by reference; {expected}"),
            );
            false
        }
        Type::Path(path)
            if path.qself.is_none()
                && path.path.segments.last().is_some_and(|last| {
                    last.ident == "WorkerContext" && last.arguments.is_none()
                }) =>
        {
            true
        }
        other => {
            cx.error_spanned_by(
                other,
                format!("the first parameter must be the `WorkerContext`; {expected}"),
            );
            false
        }
    }
}

/// Looks through invisible groups (a `macro_rules!` `$ty`) and parentheses:
/// `(WorkerContext)` is the same type as `WorkerContext`.
fn ungroup(mut ty: &Type) -> &Type {
    loop {
        ty = match ty {
            Type::Group(group) => &group.elem,
            Type::Paren(paren) => &paren.elem,
            _ => return ty,
        };
    }
}

/// The return type, which must be spelled `Result<…>`; whether it is
/// `worker_core::Result<()>` is left to the compiler.
fn output<'a>(signature: &'a Signature, expected: &str, cx: &mut Ctxt) -> Option<&'a Type> {
    match &signature.output {
        ReturnType::Default => {
            cx.error(
                signature.paren_token.span.close(),
                format!("#[worker] functions must return `Result<()>`, or `Result<T>` with `T: Serialize`; {expected}"),
            );
            None
        }
        ReturnType::Type(_, ty) => match ungroup(ty) {
            Type::Path(path)
                if path.qself.is_none()
                    && path
                        .path
                        .segments
                        .last()
                        .is_some_and(|last| last.ident == "Result") =>
            {
                Some(ty)
            }
            other => {
                cx.error_spanned_by(
                    other,
                    format!("#[worker] functions must return `Result<()>`, or `Result<T>` with `T: Serialize`; {expected}"),
                );
                None
            }
        },
    }
}

/// The given name if it is valid, else the function's name in kebab-case.
fn name(given: Option<LitStr>, ident: &Ident, cx: &mut Ctxt) -> Option<LitStr> {
    match given {
        Some(lit) => match name_problem(&lit.value()) {
            None => Some(lit),
            Some(problem) => {
                cx.error(lit.span(), problem);
                None
            }
        },
        None => {
            let derived = name_from_ident(&ident.to_string());
            if derived.is_empty() {
                cx.error(
                    ident.span(),
                    format!(
                        "can't derive a worker name from `{ident}`; give one, like #[worker(\"send-email\")]"
                    ),
                );
                return None;
            }
            Some(LitStr::new(&derived, ident.span()))
        }
    }
}

// The runtime's rule for names, compiled from worker-core's own file so
// that the two can't drift: a bad literal fails the build, not the start.
#[path = "../../../worker-core/src/name_rule.rs"]
mod name_rule;
pub(super) use name_rule::name_problem;

/// `cleanup_temp_files` → `cleanup-temp-files`; `r#type` → `type`;
/// leading and trailing underscores dropped (`_private_job` → `private-job`).
pub(super) fn name_from_ident(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    ident.trim_matches('_').replace('_', "-")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn snake_case_becomes_kebab_case() {
        assert_eq!(name_from_ident("cleanup_temp_files"), "cleanup-temp-files");
        assert_eq!(name_from_ident("send_email"), "send-email");
        assert_eq!(name_from_ident("report"), "report");
    }

    #[test]
    fn raw_identifiers_lose_their_prefix() {
        assert_eq!(name_from_ident("r#type"), "type");
        assert_eq!(name_from_ident("r#async_job"), "async-job");
    }

    #[test]
    fn leading_and_trailing_underscores_are_dropped() {
        assert_eq!(name_from_ident("_private_job"), "private-job");
        assert_eq!(name_from_ident("__job__"), "job");
        assert_eq!(name_from_ident("__"), "");
    }

    #[test]
    fn other_characters_are_kept() {
        assert_eq!(name_from_ident("SendEmail"), "SendEmail");
        assert_eq!(name_from_ident("a__b"), "a--b");
        assert_eq!(name_from_ident("café_au_lait"), "café-au-lait");
    }

    #[test]
    fn names_follow_the_runtime_rule() {
        for good in ["send-email", "a", "notify.sms", "ré-essai", "x_1"] {
            assert_eq!(name_problem(good), None, "{good}");
        }
        for bad in [
            "",
            " ",
            "send email",
            "tab\there",
            "nl\n",
            "bell\u{7}",
            "nbsp\u{a0}x",
        ] {
            assert!(name_problem(bad).is_some(), "{bad:?}");
        }
    }

    /// The documented rule, written out independently of `name_problem`.
    fn documented(name: &str) -> bool {
        !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c.is_control())
    }

    fn names() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            4 => prop::char::range('!', '~'),
            2 => prop::sample::select(&[
                ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{1680}',
                '\u{2000}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}',
                '\u{3000}', '\u{200b}', '\u{feff}', '\0', '\u{7f}', '\u{9f}',
            ][..]),
            2 => any::<char>(),
        ];
        prop_oneof![
            prop::collection::vec(c, 0..8).prop_map(|chars| chars.into_iter().collect()),
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(crate::testing::config(1024))]

        #[test]
        fn names_are_accepted_exactly_when_documented(name in names()) {
            prop_assert_eq!(name_problem(&name).is_none(), documented(&name), "{:?}", name);
        }

        #[test]
        fn a_derived_name_is_valid_unless_nothing_is_left(ident in "(r#)?[a-zA-Z_\u{e9}][a-zA-Z0-9_\u{e9}]{0,10}") {
            let derived = name_from_ident(&ident);
            let nothing_left = ident.trim_start_matches("r#").trim_matches('_').is_empty();
            prop_assert_eq!(derived.is_empty(), nothing_left);
            prop_assert!(nothing_left || name_problem(&derived).is_none(), "{:?}", derived);
        }
    }
}
