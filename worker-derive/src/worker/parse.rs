//! Syntax: the attribute's arguments into [`Args`], the annotated item into a
//! [`FnHead`] (visibility and signature). Values are checked as far as their syntax goes (a timeout is
//! a well-formed positive duration); how they fit together is `validate`'s job.

use std::time::Duration;

use proc_macro2::{Delimiter, Ident, Span, TokenStream, TokenTree};
use syn::LitStr;

use crate::ctxt::Ctxt;
use crate::fn_item::FnHead;
use crate::rate::Rate;
use crate::{duration, fn_item, rate};

pub(super) const NAME_MUST_BE_LITERAL: &str =
    "the worker name must be a string literal, like #[worker(\"send-email\")]";

pub(super) const NOT_A_FN: &str = "#[worker] can only be applied to an `async fn`";

pub(super) const NOT_A_BLOCKING_FN: &str = "#[worker(blocking)] can only be applied to a `fn`";

/// What the attribute said, each value at most once.
#[derive(Default)]
pub(super) struct Args {
    pub(super) name: Attr<LitStr>,
    pub(super) timeout: Attr<Duration>,
    /// `blocking` or `blocking = true`: a plain `fn` for tokio's blocking pool.
    pub(super) blocking: Attr<bool>,
    pub(super) retries: Attr<u32>,
    pub(super) backoff: Attr<Duration>,
    pub(super) backoff_max: Attr<Duration>,
    pub(super) concurrency: Attr<usize>,
    pub(super) queue_limit: Attr<usize>,
    pub(super) global_concurrency: Attr<usize>,
    pub(super) rate: Attr<Rate>,
    /// `limit_by = "account_id"`: the payload field whose values the
    /// `key_*` limits apply to, one by one.
    pub(super) limit_by: Attr<PayloadField>,
    pub(super) key_concurrency: Attr<usize>,
    pub(super) key_rate: Attr<Rate>,
    pub(super) priority: Attr<i32>,
    /// `unique = "user_id"`: the payload field that keys every call.
    pub(super) unique: Attr<PayloadField>,
    pub(super) every: Attr<Duration>,
    pub(super) cron: Attr<String>,
    pub(super) tz: Attr<String>,
    /// `local`: always run in this process, never through a backend.
    pub(super) local: Attr<bool>,
}

/// A field of the worker's payload, named by a string literal.
#[derive(Debug, PartialEq)]
pub(super) struct PayloadField {
    /// The name as written, which is also the payload's JSON key the
    /// runtime reads.
    pub(super) name: String,
    /// The same name as an identifier the expansion can access the field
    /// by (raw for a keyword like `type`), spanned at the literal so that a
    /// missing field is reported there.
    pub(super) access: Ident,
}

/// One option's value plus whether it was given at all, so the second
/// occurrence is reported even when the first one's value was invalid.
pub(super) struct Attr<T> {
    seen: bool,
    value: Option<T>,
    /// Where the key was first written, for errors about how options fit
    /// together.
    span: Option<Span>,
}

impl<T> Default for Attr<T> {
    fn default() -> Self {
        Attr {
            seen: false,
            value: None,
            span: None,
        }
    }
}

impl<T> Attr<T> {
    /// Marks `key` as given; on its second occurrence reports an error at
    /// `span` and returns `false`, so the setter stops there.
    fn first(&mut self, cx: &mut Ctxt, key: &str, span: Span) -> bool {
        if self.seen {
            cx.error(span, format!("{key} given twice"));
            return false;
        }
        self.seen = true;
        self.span = Some(span);
        true
    }

    /// Where the key was written, if it was.
    pub(super) fn span(&self) -> Option<Span> {
        self.span
    }

    /// The value, if given and valid, without giving it up.
    pub(super) fn value(&self) -> Option<&T> {
        self.value.as_ref()
    }

    fn set(&mut self, value: T) {
        self.value = Some(value);
    }

    pub(super) fn get(self) -> Option<T> {
        self.value
    }
}

impl Attr<bool> {
    /// A flag: set means its value, unset (or invalid) means off.
    pub(super) fn is_on(&self) -> bool {
        self.value == Some(true)
    }

    /// The flag's value, off if not given; `None` if it was given with a
    /// value that was reported as invalid, so nobody can tell what was meant.
    pub(super) fn given(&self) -> Option<bool> {
        match (self.seen, self.value) {
            (true, None) => None,
            (_, value) => Some(value.unwrap_or(false)),
        }
    }
}

/// One `key` or `key = value` argument.
struct Setting {
    key: Ident,
    /// The `=` and the tokens after it, up to the next comma.
    value: Option<(Span, TokenStream)>,
}

/// An option's parser: reads `setting` into `args`, reporting problems to `cx`.
type Setter = fn(&mut Args, &mut Ctxt, Setting);

/// Every option `#[worker]` understands, `key = value` or a bare flag. To add
/// one (say `retries = 3`), add a field to [`Args`], a setter below, and a
/// row here; the unknown-option message lists the keys from this table, and
/// a bare key in first position is read as an option only if it is here.
const OPTIONS: &[(&str, Setter)] = &[
    ("name", set_name),
    ("timeout", set_timeout),
    ("retries", set_retries),
    ("backoff", set_backoff),
    ("backoff_max", set_backoff_max),
    ("concurrency", set_concurrency),
    ("queue_limit", set_queue_limit),
    ("global_concurrency", set_global_concurrency),
    ("rate", set_rate),
    ("limit_by", set_limit_by),
    ("key_concurrency", set_key_concurrency),
    ("key_rate", set_key_rate),
    ("priority", set_priority),
    ("unique", set_unique),
    ("every", set_every),
    ("cron", set_cron),
    ("tz", set_tz),
    ("local", set_local),
    ("blocking", set_blocking),
];

pub(super) fn unknown_option_message(key: &Ident) -> String {
    let expected: Vec<String> = OPTIONS.iter().map(|(k, _)| format!("`{k}`")).collect();
    format!(
        "unknown option `{key}` for #[worker]; expected one of: {}",
        expected.join(", ")
    )
}

/// Parses `"send-email", timeout = "5s"`. A bad argument is reported and
/// skipped, so one typo doesn't hide the errors after it.
pub(super) fn args(attr: TokenStream, cx: &mut Ctxt) -> Args {
    let mut args = Args::default();
    for (index, tokens) in split_on_commas(attr, cx).into_iter().enumerate() {
        let tokens = ungroup(tokens);
        if let Some(setting) = as_setting(&tokens, index) {
            let key = setting.key.to_string();
            match OPTIONS.iter().find(|(k, _)| *k == key) {
                Some((_, setter)) => setter(&mut args, cx, setting),
                None => cx.error(setting.key.span(), unknown_option_message(&setting.key)),
            }
        } else if index == 0 {
            positional_name(&mut args, cx, tokens);
        } else if string_literal(&tokens).is_some() {
            cx.error_spanned_by(
                tokens_of(tokens),
                "the worker name must be the first argument, like #[worker(\"send-email\", timeout = \"5s\")]",
            );
        } else {
            cx.error_spanned_by(
                tokens_of(tokens),
                "expected an option written `key = value`, like `timeout = \"5s\"`",
            );
        }
    }
    args
}

/// Splits the arguments at top-level commas (commas inside groups belong to
/// the value). A trailing comma is fine; an empty argument is an error.
fn split_on_commas(attr: TokenStream, cx: &mut Ctxt) -> Vec<Vec<TokenTree>> {
    let mut arguments = Vec::new();
    let mut current = Vec::new();
    for token in attr {
        match &token {
            TokenTree::Punct(punct) if punct.as_char() == ',' => {
                if current.is_empty() {
                    cx.error(punct.span(), "expected an argument before `,`");
                } else {
                    arguments.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(token),
        }
    }
    if !current.is_empty() {
        arguments.push(current);
    }
    arguments
}

/// Looks through the invisible group a `macro_rules!` fragment arrives in.
fn ungroup(tokens: Vec<TokenTree>) -> Vec<TokenTree> {
    match tokens.as_slice() {
        [TokenTree::Group(group)] if group.delimiter() == Delimiter::None => {
            group.stream().into_iter().collect()
        }
        _ => tokens,
    }
}

fn tokens_of(tokens: Vec<TokenTree>) -> TokenStream {
    tokens.into_iter().collect()
}

/// `key = value`, or a bare `key`. A bare identifier in first position is
/// only an option if it names one: `#[worker(send_email)]` is a mistaken
/// name, not an unknown option.
fn as_setting(tokens: &[TokenTree], index: usize) -> Option<Setting> {
    let (TokenTree::Ident(key), rest) = tokens.split_first()? else {
        return None;
    };
    match rest.split_first() {
        Some((TokenTree::Punct(eq), value)) if eq.as_char() == '=' => Some(Setting {
            key: key.clone(),
            value: Some((eq.span(), value.iter().cloned().collect())),
        }),
        None if index > 0 || OPTIONS.iter().any(|(k, _)| key == k) => Some(Setting {
            key: key.clone(),
            value: None,
        }),
        _ => None,
    }
}

fn string_literal(tokens: &[TokenTree]) -> Option<LitStr> {
    match tokens {
        [TokenTree::Literal(_)] => syn::parse2(tokens.iter().cloned().collect()).ok(),
        _ => None,
    }
}

fn positional_name(args: &mut Args, cx: &mut Ctxt, tokens: Vec<TokenTree>) {
    match string_literal(&tokens) {
        Some(lit) => {
            if args.name.first(cx, "name", lit.span()) {
                args.name.set(lit);
            }
        }
        None => cx.error_spanned_by(tokens_of(tokens), NAME_MUST_BE_LITERAL),
    }
}

/// The value of `setting`, or an error saying what it should look like.
fn value_of(cx: &mut Ctxt, setting: &Setting, example: &str) -> Option<Vec<TokenTree>> {
    let key = &setting.key;
    match &setting.value {
        None => {
            cx.error(key.span(), format!("`{key}` needs a value, like {example}"));
            None
        }
        Some((eq, value)) if value.is_empty() => {
            cx.error(*eq, format!("expected a value after `=`, like {example}"));
            None
        }
        Some((_, value)) => Some(ungroup(value.clone().into_iter().collect())),
    }
}

fn set_name(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    if !args.name.first(cx, "name", setting.key.span()) {
        return;
    }
    let Some(value) = value_of(cx, &setting, "name = \"send-email\"") else {
        return;
    };
    match string_literal(&value) {
        Some(lit) => args.name.set(lit),
        None => cx.error_spanned_by(tokens_of(value), NAME_MUST_BE_LITERAL),
    }
}

fn set_timeout(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_duration(&mut args.timeout, cx, setting, "timeout = \"5s\"");
}

fn set_backoff(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_duration(&mut args.backoff, cx, setting, "backoff = \"1s\"");
}

fn set_backoff_max(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_duration(&mut args.backoff_max, cx, setting, "backoff_max = \"5m\"");
}

/// A positive duration written as a string literal: `key = "1m30s"`.
fn set_duration(attr: &mut Attr<Duration>, cx: &mut Ctxt, setting: Setting, example: &str) {
    let key = setting.key.to_string();
    if !attr.first(cx, &key, setting.key.span()) {
        return;
    }
    let Some(value) = value_of(cx, &setting, example) else {
        return;
    };
    let Some(lit) = string_literal(&value) else {
        cx.error_spanned_by(
            tokens_of(value),
            format!("{key} must be a string literal, like {example}"),
        );
        return;
    };
    let text = lit.value();
    match duration::parse(&text) {
        Ok(duration) if duration.is_zero() => {
            cx.error(lit.span(), format!("{key} must be greater than zero"));
        }
        Ok(duration) => attr.set(duration),
        Err(err) => cx.error(
            lit.span(),
            format!("invalid {key} {text:?}: {err}; {}", duration::HINT),
        ),
    }
}

fn set_every(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_duration(&mut args.every, cx, setting, "every = \"15m\"");
}

fn set_rate(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_rate_of(&mut args.rate, cx, setting, "rate = \"100/1m\"");
}

fn set_key_rate(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_rate_of(&mut args.key_rate, cx, setting, "key_rate = \"10/1m\"");
}

/// A rate written as a string literal: `key = "100/1m"`.
fn set_rate_of(attr: &mut Attr<Rate>, cx: &mut Ctxt, setting: Setting, example: &str) {
    let key = setting.key.to_string();
    let Some(lit) = string_value(attr, cx, setting, example) else {
        return;
    };
    let text = lit.value();
    match rate::parse(&text) {
        Ok(rate) => attr.set(rate),
        Err(err) => cx.error(
            lit.span(),
            format!("invalid {key} {text:?}: {err}; {}", rate::HINT),
        ),
    }
}

/// A cron expression, parsed here with the parser the runtime uses.
fn set_cron(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    let example = "cron = \"0 3 * * *\"";
    let Some(lit) = string_value(&mut args.cron, cx, setting, example) else {
        return;
    };
    let expression = lit.value();
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(&expression);
    match parsed {
        Ok(_) => args.cron.set(expression),
        Err(error) => cx.error(
            lit.span(),
            format!(
                "invalid cron expression {expression:?}: {error}; write 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, like \"0 3 * * *\""
            ),
        ),
    }
}

/// An IANA zone name. Checked against the build machine's zone database
/// when it has one; otherwise `Workers::start` checks it.
fn set_tz(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    let Some(lit) = string_value(&mut args.tz, cx, setting, "tz = \"Europe/Berlin\"") else {
        return;
    };
    let zone = lit.value();
    match crate::zones::known(&zone) {
        Some(false) => cx.error(
            lit.span(),
            format!("unknown time zone {zone:?}; use an IANA name like \"Europe/Berlin\" or \"America/New_York\""),
        ),
        Some(true) | None => args.tz.set(zone),
    }
}

fn set_unique(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_payload_field(&mut args.unique, cx, setting, "unique = \"user_id\"");
}

fn set_limit_by(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    set_payload_field(&mut args.limit_by, cx, setting, "limit_by = \"account_id\"");
}

/// `unique = "user_id"` or `limit_by = "account_id"`: a payload field's name. Whether the payload has
/// that field is the compiler's to say (the expansion asks it, at this
/// literal); here only whether the name could be a field's at all.
fn set_payload_field(
    attr: &mut Attr<PayloadField>,
    cx: &mut Ctxt,
    setting: Setting,
    example: &str,
) {
    let key = setting.key.to_string();
    let Some(lit) = string_value(attr, cx, setting, example) else {
        return;
    };
    let name = lit.value();
    match field_access(&name, lit.span()) {
        Some(access) => attr.set(PayloadField { name, access }),
        None if name.is_empty() => cx.error(
            lit.span(),
            format!("{key} can't be empty; name a field of the payload, like {example}"),
        ),
        None => cx.error(
            lit.span(),
            format!(
                "{key} = {name:?} is not a field name; name a field of the payload as it is declared, like {example}"
            ),
        ),
    }
}

/// `name` as the identifier of a named field, if it can be one. A keyword
/// is accessed raw: a field `r#type` arrives as `"type"` in the JSON the
/// runtime reads, so `"type"` is what the user writes, and `"r#type"` is
/// refused. Numbers (tuple fields), paths, spaces, `_` and `self` are no
/// field's names.
fn field_access(name: &str, span: Span) -> Option<Ident> {
    if name.starts_with("r#") || matches!(name, "_" | "self" | "Self" | "super" | "crate") {
        return None;
    }
    // `parse_any` accepts keywords too; comparing the text back rejects
    // names with surrounding spaces, which parsing would skip.
    let ident: Ident = syn::parse::Parser::parse_str(syn::ext::IdentExt::parse_any, name).ok()?;
    if ident != name {
        return None;
    }
    // syn's keyword list predates edition 2024's `gen`.
    let keyword = syn::parse_str::<Ident>(name).is_err() || name == "gen";
    Some(if keyword {
        Ident::new_raw(name, span)
    } else {
        Ident::new(name, span)
    })
}

fn set_local(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    if !args.local.first(cx, "local", setting.key.span()) {
        return;
    }
    match setting.value {
        None => args.local.set(true),
        Some((_, value)) => cx.error_spanned_by(
            value,
            "`local` is a flag: write #[worker(local)] to keep this worker's runs in this process",
        ),
    }
}

/// A string literal value: `key = "…"`.
fn string_value<T>(
    attr: &mut Attr<T>,
    cx: &mut Ctxt,
    setting: Setting,
    example: &str,
) -> Option<LitStr> {
    let key = setting.key.to_string();
    if !attr.first(cx, &key, setting.key.span()) {
        return None;
    }
    let value = value_of(cx, &setting, example)?;
    let lit = string_literal(&value);
    if lit.is_none() {
        cx.error_spanned_by(
            tokens_of(value),
            format!("{key} must be a string literal, like {example}"),
        );
    }
    lit
}

fn set_retries(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    // worker_core::MAX_RETRIES: 65,535 attempts in all.
    let max = u64::from(u16::MAX) - 1;
    if let Some(n) = whole_number(&mut args.retries, cx, setting, "retries = 3", 0, max) {
        args.retries.set(n as u32);
    }
}

fn set_concurrency(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    let max = u64::from(u32::MAX);
    if let Some(n) = whole_number(
        &mut args.concurrency,
        cx,
        setting,
        "concurrency = 4",
        1,
        max,
    ) {
        args.concurrency.set(n as usize);
    }
}

fn set_queue_limit(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    let max = u64::from(u32::MAX);
    if let Some(n) = whole_number(
        &mut args.queue_limit,
        cx,
        setting,
        "queue_limit = 100",
        0,
        max,
    ) {
        args.queue_limit.set(n as usize);
    }
}

fn set_global_concurrency(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    let max = u64::from(u32::MAX);
    if let Some(n) = whole_number(
        &mut args.global_concurrency,
        cx,
        setting,
        "global_concurrency = 16",
        1,
        max,
    ) {
        args.global_concurrency.set(n as usize);
    }
}

fn set_key_concurrency(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    let max = u64::from(u32::MAX);
    if let Some(n) = whole_number(
        &mut args.key_concurrency,
        cx,
        setting,
        "key_concurrency = 1",
        1,
        max,
    ) {
        args.key_concurrency.set(n as usize);
    }
}

/// `priority = 5` or `priority = -1`: the one signed number among the
/// options, so it has its own reader (`whole_number` takes no sign).
fn set_priority(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    let example = "priority = 5";
    if !args.priority.first(cx, "priority", setting.key.span()) {
        return;
    }
    let Some(value) = value_of(cx, &setting, example) else {
        return;
    };
    let range = format!("a whole number from {} to {}", i32::MIN, i32::MAX);
    let problem = match signed_integer(&value) {
        None => format!("priority must be {range}, like {example} (higher starts first)"),
        Some(Ok(n)) => match i32::try_from(n) {
            Ok(n) => {
                args.priority.set(n);
                return;
            }
            Err(_) if n < 0 => format!("priority = {n} is too small: priority must be {range}"),
            Err(_) => format!("priority = {n} is too large: priority must be {range}"),
        },
        Some(Err(text)) => format!("invalid priority `{text}`: priority must be {range}"),
    };
    // At the whole value, so `-1`'s sign is underlined with its digits.
    cx.error_spanned_by(tokens_of(value), problem);
}

/// `5`, `-1` or `- 1`: an integer literal, optionally after a minus sign.
/// Read as `i128`, wide enough to call any sensible number too large rather
/// than invalid; a wider one is `Err` with its text.
fn signed_integer(value: &[TokenTree]) -> Option<Result<i128, String>> {
    let (sign, literal) = match value {
        [TokenTree::Punct(minus), literal @ TokenTree::Literal(_)] if minus.as_char() == '-' => {
            (-1, literal)
        }
        [literal @ TokenTree::Literal(_)] => (1, literal),
        _ => return None,
    };
    let lit = syn::parse2::<syn::LitInt>(literal.clone().into()).ok()?;
    // A literal that is itself negative (only a macro can make one) after a
    // minus sign would be `- -1`; not a number anyone means to write.
    if sign < 0 && lit.base10_digits().starts_with('-') {
        return None;
    }
    Some(match lit.base10_parse::<i128>() {
        Ok(n) => Ok(sign * n),
        Err(_) if sign < 0 => Err(format!("-{lit}")),
        Err(_) => Err(lit.to_string()),
    })
}

/// An integer literal from `min` to `max`, written `key = 3`.
fn whole_number<T>(
    attr: &mut Attr<T>,
    cx: &mut Ctxt,
    setting: Setting,
    example: &str,
    min: u64,
    max: u64,
) -> Option<u64> {
    let key = setting.key.to_string();
    if !attr.first(cx, &key, setting.key.span()) {
        return None;
    }
    let value = value_of(cx, &setting, example)?;
    let range = format!("a whole number from {min} to {max}");
    let lit = match value.as_slice() {
        [TokenTree::Literal(_)] => syn::parse2::<syn::LitInt>(tokens_of(value.clone())).ok(),
        _ => None,
    };
    let Some(lit) = lit else {
        cx.error_spanned_by(
            tokens_of(value),
            format!("{key} must be {range}, like {example}"),
        );
        return None;
    };
    let problem = match lit.base10_parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => return Some(n),
        Ok(n) if n < min => format!("{key} = {n} is too small"),
        Ok(n) => format!("{key} = {n} is too large"),
        Err(_) => format!("invalid {key} `{lit}`"),
    };
    cx.error(lit.span(), format!("{problem}: {key} must be {range}"));
    None
}

/// `blocking`, `blocking = true` or `blocking = false`. Anything else is
/// most likely a misunderstanding of what the flag is, so say what it does.
fn set_blocking(args: &mut Args, cx: &mut Ctxt, setting: Setting) {
    if !args.blocking.first(cx, "blocking", setting.key.span()) {
        return;
    }
    let Some((eq, value)) = setting.value else {
        args.blocking.set(true);
        return;
    };
    let value = ungroup(value.into_iter().collect());
    if value.is_empty() {
        cx.error(
            eq,
            format!("expected `true` or `false` after `=`; {BLOCKING_FLAG}"),
        );
        return;
    }
    match value.as_slice() {
        [TokenTree::Ident(word)] if word == "true" => args.blocking.set(true),
        [TokenTree::Ident(word)] if word == "false" => args.blocking.set(false),
        _ => cx.error_spanned_by(
            tokens_of(value),
            format!("`blocking` is a flag, set or not; {BLOCKING_FLAG}"),
        ),
    }
}

const BLOCKING_FLAG: &str =
    "write #[worker(blocking)] (or `blocking = true`) to run a plain `fn` on tokio's blocking pool";

/// The annotated function's visibility and signature, or an error if it
/// isn't a function.
pub(super) fn item(item: TokenStream, blocking: bool, cx: &mut Ctxt) -> Option<FnHead> {
    let not_a_fn = if blocking {
        NOT_A_BLOCKING_FN
    } else {
        NOT_A_FN
    };
    fn_item::head(item, cx, not_a_fn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(attr: &str) -> (Args, Vec<String>) {
        let tokens: TokenStream = match attr.parse() {
            Ok(tokens) => tokens,
            Err(err) => panic!("bad test input {attr:?}: {err}"),
        };
        let mut cx = Ctxt::new();
        let args = args(tokens, &mut cx);
        let errors = match cx.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        };
        (args, errors)
    }

    #[test]
    fn the_table_has_one_row_per_key() {
        let mut keys: Vec<&str> = OPTIONS.iter().map(|(key, _)| *key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), OPTIONS.len());
    }

    #[test]
    fn the_unknown_option_message_lists_every_key_in_table_order() {
        let key = Ident::new("foo", Span::call_site());
        assert_eq!(
            unknown_option_message(&key),
            "unknown option `foo` for #[worker]; expected one of: `name`, `timeout`, `retries`, `backoff`, `backoff_max`, `concurrency`, `queue_limit`, `global_concurrency`, `rate`, `limit_by`, `key_concurrency`, `key_rate`, `priority`, `unique`, `every`, `cron`, `tz`, `local`, `blocking`"
        );
    }

    #[test]
    fn no_arguments_set_nothing() {
        let (args, errors) = parsed("");
        assert!(errors.is_empty());
        assert!(!args.blocking.is_on());
        assert!(args.name.get().is_none());
        assert!(args.timeout.get().is_none());
    }

    #[test]
    fn the_positional_name_and_options_are_read() {
        let (args, errors) = parsed(r#""send-email", timeout = "1s500ms""#);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            args.name.get().map(|lit| lit.value()).as_deref(),
            Some("send-email")
        );
        assert_eq!(args.timeout.get(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn options_may_come_in_any_order() {
        let (args, errors) = parsed(r#"timeout = "2m", name = "report""#);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            args.name.get().map(|lit| lit.value()).as_deref(),
            Some("report")
        );
        assert_eq!(args.timeout.get(), Some(Duration::from_secs(120)));
    }

    #[test]
    fn a_bad_option_does_not_hide_the_next_one() {
        let (args, errors) = parsed(r#"foo = 1, timeout = "5s", bar = (1, 2), name = "x""#);
        assert_eq!(
            errors,
            [
                "unknown option `foo` for #[worker]; expected one of: `name`, `timeout`, `retries`, `backoff`, `backoff_max`, `concurrency`, `queue_limit`, `global_concurrency`, `rate`, `limit_by`, `key_concurrency`, `key_rate`, `priority`, `unique`, `every`, `cron`, `tz`, `local`, `blocking`",
                "unknown option `bar` for #[worker]; expected one of: `name`, `timeout`, `retries`, `backoff`, `backoff_max`, `concurrency`, `queue_limit`, `global_concurrency`, `rate`, `limit_by`, `key_concurrency`, `key_rate`, `priority`, `unique`, `every`, `cron`, `tz`, `local`, `blocking`",
            ]
        );
        assert_eq!(args.timeout.get(), Some(Duration::from_secs(5)));
        assert_eq!(args.name.get().map(|lit| lit.value()).as_deref(), Some("x"));
    }

    #[test]
    fn a_value_inside_an_invisible_group_is_read() {
        // What a `macro_rules!` `$timeout:literal` fragment can look like.
        let literal: TokenStream = r#""5s""#.parse().unwrap_or_default();
        let grouped = proc_macro2::Group::new(Delimiter::None, literal);
        let mut attr: TokenStream = "timeout =".parse().unwrap_or_default();
        attr.extend([TokenTree::Group(grouped)]);
        let mut cx = Ctxt::new();
        let args = args(attr, &mut cx);
        assert!(cx.check().is_ok());
        assert_eq!(args.timeout.get(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn blocking_is_a_flag() {
        for (attr, on) in [
            ("blocking", true),
            (r#""resize-image", blocking, timeout = "2s""#, true),
            ("blocking = true", true),
            ("blocking = false", false),
        ] {
            let (args, errors) = parsed(attr);
            assert!(errors.is_empty(), "{attr}: {errors:?}");
            assert_eq!(args.blocking.is_on(), on, "{attr}");
        }
    }

    #[test]
    fn blocking_takes_no_other_value() {
        let flag = "write #[worker(blocking)] (or `blocking = true`) to run a plain `fn` on tokio's blocking pool";
        for attr in [
            r#"blocking = "yes""#,
            "blocking = 1",
            "blocking = yes",
            "blocking = !false",
        ] {
            let (args, errors) = parsed(attr);
            assert_eq!(
                errors,
                [format!("`blocking` is a flag, set or not; {flag}")],
                "{attr}"
            );
            assert!(!args.blocking.is_on(), "{attr}");
        }
        let (_, errors) = parsed("blocking =");
        assert_eq!(
            errors,
            [format!("expected `true` or `false` after `=`; {flag}")]
        );
        let (_, errors) = parsed("blocking, blocking = false");
        assert_eq!(errors, ["blocking given twice"]);
    }

    const PRIORITY_RANGE: &str = "a whole number from -2147483648 to 2147483647";

    #[test]
    fn priority_is_a_whole_number_with_an_optional_sign() {
        for (attr, expected) in [
            ("priority = 5", 5),
            ("priority = 0", 0),
            ("priority = -1", -1),
            ("priority = - 1", -1),
            ("priority = 1_000", 1000),
            ("priority = 2147483647", i32::MAX),
            ("priority = -2147483648", i32::MIN),
        ] {
            let (args, errors) = parsed(attr);
            assert!(errors.is_empty(), "{attr}: {errors:?}");
            assert_eq!(args.priority.get(), Some(expected), "{attr}");
        }
    }

    #[test]
    fn a_negative_priority_from_a_macro_fragment_is_read() {
        // `$priority:literal` given `-3`: one negative literal token, in an
        // invisible group.
        let literal: TokenStream =
            TokenTree::Literal(proc_macro2::Literal::i32_unsuffixed(-3)).into();
        let grouped = proc_macro2::Group::new(Delimiter::None, literal);
        let mut attr: TokenStream = "priority =".parse().unwrap_or_default();
        attr.extend([TokenTree::Group(grouped)]);
        let mut cx = Ctxt::new();
        let args = args(attr, &mut cx);
        assert!(cx.check().is_ok());
        assert_eq!(args.priority.get(), Some(-3));
    }

    #[test]
    fn priority_refuses_anything_but_an_i32() {
        let not_a_number =
            format!("priority must be {PRIORITY_RANGE}, like priority = 5 (higher starts first)");
        for (attr, message) in [
            (r#"priority = "5""#, not_a_number.clone()),
            ("priority = 1.5", not_a_number.clone()),
            ("priority = high", not_a_number.clone()),
            ("priority = -high", not_a_number.clone()),
            ("priority = --1", not_a_number.clone()),
            ("priority = 1 + 1", not_a_number.clone()),
            (
                "priority = 2147483648",
                format!("priority = 2147483648 is too large: priority must be {PRIORITY_RANGE}"),
            ),
            (
                "priority = -2147483649",
                format!("priority = -2147483649 is too small: priority must be {PRIORITY_RANGE}"),
            ),
            (
                "priority = -1000000000000000000000000000000000000000000",
                format!(
                    "invalid priority `-1000000000000000000000000000000000000000000`: priority must be {PRIORITY_RANGE}"
                ),
            ),
            (
                "priority",
                "`priority` needs a value, like priority = 5".to_owned(),
            ),
            (
                "priority = 1, priority = 2",
                "priority given twice".to_owned(),
            ),
        ] {
            let (args, errors) = parsed(attr);
            assert_eq!(errors, [message], "{attr}");
            if attr != "priority = 1, priority = 2" {
                assert_eq!(args.priority.get(), None, "{attr}");
            }
        }
    }

    fn unique(attr: &str) -> Option<(String, String)> {
        let (args, errors) = parsed(attr);
        assert!(errors.is_empty(), "{attr}: {errors:?}");
        args.unique
            .get()
            .map(|field| (field.name, field.access.to_string()))
    }

    #[test]
    fn unique_names_a_field_and_keeps_its_json_name() {
        let field = |name: &str, access: &str| Some((name.to_owned(), access.to_owned()));
        assert_eq!(unique(r#"unique = "user_id""#), field("user_id", "user_id"));
        assert_eq!(unique(r#"unique = "café""#), field("café", "café"));
        assert_eq!(unique(r#"unique = "_id""#), field("_id", "_id"));
        // A contextual keyword is an ordinary field name.
        assert_eq!(unique(r#"unique = "union""#), field("union", "union"));
        // A keyword field is declared `r#type` and is "type" in the JSON.
        assert_eq!(unique(r#"unique = "type""#), field("type", "r#type"));
        assert_eq!(unique(r#"unique = "gen""#), field("gen", "r#gen"));
        assert_eq!(unique(""), None);
    }

    #[test]
    fn unique_refuses_what_cant_be_a_field_name() {
        let (_, errors) = parsed(r#"unique = """#);
        assert_eq!(
            errors,
            ["unique can't be empty; name a field of the payload, like unique = \"user_id\""]
        );
        for name in [
            "user id",
            " user_id",
            "user-id",
            "0",
            "1st",
            "a.b",
            "a::b",
            "r#type",
            "_",
            "self",
            "Self",
            "crate",
            "user_id()",
            "\"",
        ] {
            let (args, errors) = parsed(&format!("unique = {name:?}"));
            assert_eq!(
                errors,
                [format!(
                    "unique = {name:?} is not a field name; name a field of the payload as it is declared, like unique = \"user_id\""
                )],
                "{name:?}"
            );
            assert!(args.unique.get().is_none(), "{name:?}");
        }
        let (_, errors) = parsed("unique = user_id");
        assert_eq!(
            errors,
            ["unique must be a string literal, like unique = \"user_id\""]
        );
        let (_, errors) = parsed(r#"unique = "a", unique = "b""#);
        assert_eq!(errors, ["unique given twice"]);
    }
}
