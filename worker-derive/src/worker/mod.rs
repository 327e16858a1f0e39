//! `#[worker]`: parse the arguments and the function, validate them together,
//! expand into the function plus its registration.

mod call_site;
mod expand;
mod parse;
#[cfg(test)]
mod properties;
mod validate;

use proc_macro2::TokenStream;

use crate::ctxt::Ctxt;

/// The whole attribute, on `proc_macro2` tokens so it runs without a compiler.
///
/// On error the function is still emitted unchanged next to the
/// `compile_error!`s, so the rest of the crate (and rust-analyzer) keeps
/// seeing it.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(attr, item.clone()) {
        Ok(expanded) => expanded,
        Err(err) => {
            let errors = err.to_compile_error();
            quote::quote!(#item #errors)
        }
    }
}

fn try_expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut cx = Ctxt::new();
    let args = parse::args(attr, &mut cx);
    let head = parse::item(item.clone(), args.blocking.is_on(), &mut cx);
    let worker = head
        .as_ref()
        .and_then(|head| validate::worker(args, head, &mut cx));
    cx.check()?;
    match worker {
        Some(worker) => Ok(expand::worker(item, &worker)),
        // `validate` only returns `None` after reporting an error, so this is
        // unreachable; if it ever isn't, say so instead of silently dropping
        // the registration.
        None => Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "#[worker] rejected this function without saying why; please report this bug",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(source: &str) -> TokenStream {
        match source.parse() {
            Ok(tokens) => tokens,
            Err(err) => panic!("bad test input {source:?}: {err}"),
        }
    }

    /// Every error of `#[worker(attr)] item`, as (message, the source text
    /// it points at).
    fn errors(attr: &str, item: &str) -> Vec<(String, String)> {
        match try_expand(tokens(attr), tokens(item)) {
            Ok(expanded) => panic!("expected errors, got:\n{expanded}"),
            Err(err) => err
                .into_iter()
                .map(|err| {
                    let at = err.span().source_text().unwrap_or_default();
                    (err.to_string(), at)
                })
                .collect(),
        }
    }

    /// The one error of `#[worker(attr)] item`.
    fn error(attr: &str, item: &str) -> (String, String) {
        let mut errors = errors(attr, item);
        assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
        errors.remove(0)
    }

    fn expanded(attr: &str, item: &str) -> String {
        match try_expand(tokens(attr), tokens(item)) {
            Ok(expanded) => expanded.to_string(),
            Err(err) => panic!("expected an expansion, got: {err}"),
        }
    }

    fn pair(message: impl Into<String>, at: &str) -> (String, String) {
        (message.into(), at.to_owned())
    }

    const SIGNATURE: &str =
        "expected `async fn name(ctx: WorkerContext[, payload: T]) -> Result<()>`";

    const OK_FN: &str =
        "async fn send_email(ctx: WorkerContext, email: Email) -> Result<()> { Ok(()) }";

    const NAME_LITERAL: &str =
        r#"the worker name must be a string literal, like #[worker("send-email")]"#;

    // --- what a valid worker expands to ---

    #[test]
    fn a_named_worker_with_payload_and_timeout_registers_a_shim() {
        let out = expanded(r#""send-email", timeout = "1m30s""#, OK_FN);
        // The function comes first, unchanged.
        assert!(out.starts_with(&tokens(OK_FN).to_string()), "{out}");
        for part in [
            "const _ : () = {",
            "fn __worker_core_shim (ctx : :: worker_core :: WorkerContext) -> impl :: core :: future :: Future < Output = :: worker_core :: Result < impl :: worker_core :: __private :: Serialize + :: core :: marker :: Send + 'static , > , > + :: core :: marker :: Send + 'static {",
            "async move {",
            "let payload = :: worker_core :: __private :: decode_payload :: < Email > (& ctx) ? ;",
            "let output : :: worker_core :: Result < _ > = send_email (ctx , payload) . await ; let output = :: worker_core :: __private :: serializable (output) ; output",
            ":: worker_core :: __private :: inventory :: submit !",
            ":: worker_core :: __private :: WorkerRegistration {",
            r#"name : "send-email" ,"#,
            "fn __worker_core_options () -> :: worker_core :: WorkerOptions { :: worker_core :: WorkerOptions :: new () . timeout (:: worker_core :: __private :: Duration :: new (90 , 0)) }",
            "options : __worker_core_options ,",
            "fn __worker_core_launcher () -> :: worker_core :: __private :: Launcher { :: worker_core :: __private :: Launcher :: new (__worker_core_shim) }",
            "launcher : __worker_core_launcher ,",
            "module_path : :: core :: module_path ! () ,",
            "file : :: core :: file ! () ,",
            "line : :: core :: line ! () ,",
        ] {
            assert!(out.contains(part), "missing `{part}` in:\n{out}");
        }
    }

    #[test]
    fn a_worker_gets_a_typed_call_site_named_like_its_function() {
        let item = "pub(crate) async fn send_email(ctx: WorkerContext, email: Email) -> Result<Receipt> { todo!() }";
        let out = expanded(r#""send-email""#, item);
        for part in [
            // Braced, so it takes the type namespace only and the fn keeps
            // its name; with the fn's visibility.
            "# [allow (non_camel_case_types)] pub (crate) struct send_email { }",
            r#"# [diagnostic :: on_unimplemented (message = "worker \"send-email\" takes a payload of type `Email`, not `{Self}`" , label = "expected `Email`")] pub trait PayloadOf_send_email { }"#,
            "impl PayloadOf_send_email for Email { }",
            r#"pub const NAME : & 'static str = "send-email" ;"#,
            "pub fn call < __WorkerCorePayload : PayloadOf_send_email > (payload : __WorkerCorePayload ,) -> :: worker_core :: TypedCall < __WorkerCorePayload , Receipt > { :: worker_core :: TypedCall :: new (Self :: NAME , payload) }",
        ] {
            assert!(out.contains(part), "missing `{part}` in:\n{out}");
        }
    }

    #[test]
    fn a_worker_without_payload_is_called_without_argument() {
        // A blocking worker, too: the call site doesn't depend on the mode.
        let out = expanded(
            "blocking",
            "fn tick(ctx: WorkerContext) -> Result<()> { Ok(()) }",
        );
        assert!(out.contains("struct tick { }"), "{out}");
        assert!(
            out.contains("pub fn call () -> :: worker_core :: TypedCall < () , () > { :: worker_core :: TypedCall :: without_payload (Self :: NAME) }"),
            "{out}"
        );
        assert!(!out.contains("on_unimplemented"), "{out}");
    }

    #[test]
    fn an_output_type_that_is_not_spelled_out_is_read_back_as_json() {
        for output in ["Result", "Result<impl Serialize>", "aliased::Result"] {
            let out = expanded(
                "",
                &format!("async fn job(ctx: WorkerContext) -> {output} {{ todo!() }}"),
            );
            assert!(
                out.contains("TypedCall < () , :: worker_core :: prelude :: Value >"),
                "{output}: {out}"
            );
        }
        let out = expanded(
            "",
            "async fn job(ctx: WorkerContext) -> std::result::Result<Vec<u8>, Error> { todo!() }",
        );
        assert!(out.contains("TypedCall < () , Vec < u8 > >"), "{out}");
    }

    #[test]
    fn braces_in_names_and_types_stay_text_in_the_diagnostic() {
        let out = expanded(
            r#""a{b}""#,
            "async fn job(ctx: WorkerContext, p: Email) -> Result<()> { todo!() }",
        );
        assert!(
            out.contains(
                r#"message = "worker \"a{{b}}\" takes a payload of type `Email`, not `{Self}`""#
            ),
            "{out}"
        );
    }

    #[test]
    fn an_unnamed_worker_is_named_after_its_function_in_kebab_case() {
        let out = expanded(
            "",
            "async fn cleanup_temp_files(ctx: WorkerContext) -> Result<()> { Ok(()) }",
        );
        assert!(out.contains(r#"name : "cleanup-temp-files""#), "{out}");
        assert!(
            out.contains(
                "fn __worker_core_options () -> :: worker_core :: WorkerOptions { :: worker_core :: WorkerOptions :: new () }"
            ),
            "{out}"
        );
        assert!(out.contains("cleanup_temp_files (ctx) . await"), "{out}");
        assert!(
            !out.contains("decode_payload"),
            "no payload, no decoding: {out}"
        );
    }

    #[test]
    fn the_name_option_names_the_worker() {
        let out = expanded(r#"name = "mailer", timeout = "500ms""#, OK_FN);
        assert!(out.contains(r#"name : "mailer""#), "{out}");
        assert!(out.contains("Duration :: new (0 , 500000000)"), "{out}");
    }

    #[test]
    fn paths_to_the_context_and_result_types_are_accepted() {
        let out = expanded(
            "",
            "pub(crate) async fn r#type(mut ctx: worker_core::WorkerContext, (a, b): (u8, u8)) -> worker_core::Result<()> { Ok(()) }",
        );
        assert!(out.contains(r#"name : "type""#), "{out}");
        assert!(out.contains("decode_payload :: < (u8 , u8) >"), "{out}");
        assert!(out.contains("r#type (ctx , payload)"), "{out}");
    }

    #[test]
    fn parenthesized_types_are_the_types_inside() {
        // Found by the property tests: `(WorkerContext)` is `WorkerContext`.
        let out = expanded(
            "",
            "async fn job(ctx: (WorkerContext)) -> (Result<()>) { Ok(()) }",
        );
        assert!(out.contains("job (ctx) . await"), "{out}");
    }

    #[test]
    fn an_option_payload_is_just_a_payload_type() {
        let out = expanded(
            "",
            "async fn job(ctx: WorkerContext, p: Option<Email>) -> Result<()> { Ok(()) }",
        );
        assert!(
            out.contains("decode_payload :: < Option < Email > >"),
            "{out}"
        );
    }

    #[test]
    fn a_trailing_comma_is_fine() {
        let out = expanded(r#""a", timeout = "5s","#, OK_FN);
        assert!(out.contains(r#"name : "a""#), "{out}");
    }

    #[test]
    fn other_attributes_and_doc_comments_stay_on_the_function() {
        let item = "/// Sends.\n#[inline] pub async fn send_email(ctx: WorkerContext) -> Result<()> { Ok(()) }";
        let out = expanded("", item);
        assert!(out.starts_with(&tokens(item).to_string()), "{out}");
    }

    #[test]
    fn a_body_syn_cant_parse_is_left_to_rustc() {
        let out = expanded(
            "",
            "async fn job(ctx: WorkerContext) -> Result<()> { let = ; }",
        );
        assert!(out.contains("WorkerRegistration"), "{out}");
    }

    // --- on error, the item is kept ---

    #[test]
    fn on_error_the_function_is_emitted_unchanged_next_to_the_errors() {
        let item = "fn send_email(ctx: WorkerContext) -> Result<()> { Ok(()) }";
        let out = expand(tokens(r#"timeout = "5x""#), tokens(item)).to_string();
        assert!(out.starts_with(&tokens(item).to_string()), "{out}");
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
        assert!(!out.contains("inventory"), "{out}");
    }

    // --- the function's shape ---

    #[test]
    fn a_sync_fn_is_rejected_at_fn_and_pointed_to_blocking() {
        assert_eq!(
            error("", "fn job(ctx: WorkerContext) -> Result<()> { Ok(()) }"),
            pair(
                "#[worker] functions must be `async fn`; for synchronous code, #[worker(blocking)] runs a plain `fn` on tokio's blocking pool",
                "fn"
            )
        );
        assert_eq!(
            error(
                "blocking = false",
                "fn job(ctx: WorkerContext) -> Result<()> { Ok(()) }"
            )
            .1,
            "fn"
        );
    }

    #[test]
    fn const_unsafe_and_extern_are_rejected_each_at_its_keyword() {
        assert_eq!(
            errors(
                "",
                r#"const async unsafe extern "C" fn job(ctx: WorkerContext) -> Result<()> { Ok(()) }"#
            ),
            [
                pair("#[worker] functions can't be `const`", "const"),
                pair("#[worker] functions can't be `unsafe`", "unsafe"),
                pair("#[worker] functions can't be `extern`", r#"extern "C""#),
            ]
        );
    }

    #[test]
    fn generics_and_where_clauses_are_rejected() {
        assert_eq!(
            errors(
                "",
                "async fn job<T>(ctx: WorkerContext, t: T) -> Result<()> where T: Send { Ok(()) }"
            ),
            [
                pair(
                    "#[worker] functions can't be generic; the runtime calls them with concrete types",
                    "<T>"
                ),
                pair(
                    "#[worker] functions can't have a `where` clause",
                    "where T: Send"
                ),
            ]
        );
    }

    #[test]
    fn impl_trait_parameters_are_rejected_at_impl_even_when_nested() {
        let message = "#[worker] parameters can't be `impl Trait`, which makes the function generic; name a concrete type";
        assert_eq!(
            error(
                "",
                "async fn job(ctx: WorkerContext, t: impl Send) -> Result<()> { Ok(()) }"
            ),
            pair(message, "impl")
        );
        assert_eq!(
            error(
                "",
                "async fn job(ctx: WorkerContext, t: Vec<impl Send>) -> Result<()> { Ok(()) }"
            ),
            pair(message, "impl")
        );
    }

    #[test]
    fn a_self_receiver_is_rejected_at_self() {
        assert_eq!(
            error(
                "",
                "async fn job(&self, ctx: WorkerContext) -> Result<()> { Ok(()) }"
            ),
            pair(
                format!(
                    "#[worker] functions can't take `self`; a worker is a free function, {SIGNATURE}"
                ),
                "self"
            )
        );
    }

    #[test]
    fn no_parameters_is_rejected_at_the_parentheses() {
        assert_eq!(
            error("", "async fn job() -> Result<()> { Ok(()) }"),
            pair(
                format!("#[worker] functions take a `WorkerContext` parameter; {SIGNATURE}"),
                "()"
            )
        );
    }

    #[test]
    fn extra_parameters_are_rejected_where_they_start() {
        assert_eq!(
            error(
                "",
                "async fn job(ctx: WorkerContext, a: A, b: B, c: C) -> Result<()> { Ok(()) }"
            ),
            pair(
                format!(
                    "too many parameters: a worker takes the `WorkerContext` and at most one payload; {SIGNATURE}"
                ),
                "b: B, c: C"
            )
        );
    }

    #[test]
    fn the_context_must_come_first_and_by_value() {
        assert_eq!(
            error(
                "",
                "async fn job(ctx: &WorkerContext) -> Result<()> { Ok(()) }"
            ),
            pair(
                format!("take the `WorkerContext` by value, not by reference; {SIGNATURE}"),
                "&WorkerContext"
            )
        );
        assert_eq!(
            error(
                "",
                "async fn job(email: String, ctx: WorkerContext) -> Result<()> { Ok(()) }"
            ),
            pair(
                format!("the first parameter must be the `WorkerContext`; {SIGNATURE}"),
                "String"
            )
        );
        assert_eq!(
            error(
                "",
                "async fn job(ctx: WorkerContext<'static>) -> Result<()> { Ok(()) }"
            )
            .1,
            "WorkerContext<'static>"
        );
    }

    #[test]
    fn a_missing_return_type_is_rejected_after_the_parameters() {
        assert_eq!(
            error("", "async fn job(ctx: WorkerContext) { }"),
            pair(
                format!(
                    "#[worker] functions must return `Result<()>`, or `Result<T>` with `T: Serialize`; {SIGNATURE}"
                ),
                ")"
            )
        );
    }

    #[test]
    fn a_non_result_return_type_is_rejected_at_the_type() {
        assert_eq!(
            error("", "async fn job(ctx: WorkerContext) -> () { }"),
            pair(
                format!(
                    "#[worker] functions must return `Result<()>`, or `Result<T>` with `T: Serialize`; {SIGNATURE}"
                ),
                "()"
            )
        );
    }

    #[test]
    fn every_problem_of_one_attribute_is_reported_at_once() {
        let found = errors(
            r#"NAME, timeout = "0s", colour = 3"#,
            "unsafe fn job<T>(&self, ctx: &WorkerContext, a: u8, b: u8) { }",
        );
        let at: Vec<&str> = found.iter().map(|(_, at)| at.as_str()).collect();
        assert_eq!(
            at,
            [
                "NAME",
                r#""0s""#,
                "colour",
                "fn",
                "unsafe",
                "<T>",
                "self",
                "&WorkerContext",
                "b: u8",
                ")"
            ],
            "{found:#?}"
        );
    }

    // --- where it goes ---

    #[test]
    fn other_items_are_rejected_at_their_keyword() {
        let message = "#[worker] can only be applied to an `async fn`";
        assert_eq!(error("", "struct Job;"), pair(message, "struct"));
        assert_eq!(error("", "pub enum Job { A }"), pair(message, "enum"));
        assert_eq!(error("", "impl Job { }"), pair(message, "impl"));
        assert_eq!(error("", "mod jobs { }"), pair(message, "mod"));
        assert_eq!(error("", "const X: u8 = 1;"), pair(message, "const"));
        assert_eq!(
            error("", "async fn job(ctx: WorkerContext) -> Result<()>;").0,
            message
        );
    }

    #[test]
    fn a_syntax_error_in_the_signature_is_syns_own() {
        let (message, at) = error("", "async fn job(ctx WorkerContext) -> Result<()> { }");
        assert_eq!(
            (message.as_str(), at.as_str()),
            ("expected `:`", "WorkerContext")
        );
    }

    // --- blocking ---

    const BLOCKING_FN: &str = "fn resize(ctx: WorkerContext, job: Job) -> Result<()> { Ok(()) }";

    #[test]
    fn a_blocking_worker_runs_its_fn_through_run_blocking() {
        let out = expanded(r#""resize-image", blocking, timeout = "2s""#, BLOCKING_FN);
        assert!(out.starts_with(&tokens(BLOCKING_FN).to_string()), "{out}");
        for part in [
            "async move {",
            "let payload = :: worker_core :: __private :: decode_payload :: < Job > (& ctx) ? ;",
            ":: worker_core :: __private :: run_blocking (ctx , move | ctx | { \
             let output : :: worker_core :: Result < _ > = resize (ctx , payload) ; let output = :: worker_core :: __private :: serializable (output) ; output \
             }) . await }",
            r#"name : "resize-image" ,"#,
            "Duration :: new (2 , 0)",
            "fn __worker_core_launcher () -> :: worker_core :: __private :: Launcher { :: worker_core :: __private :: Launcher :: new (__worker_core_shim) }",
            "launcher : __worker_core_launcher ,",
        ] {
            assert!(out.contains(part), "missing `{part}` in:\n{out}");
        }
        // The plain fn is called, never awaited.
        assert!(!out.contains("payload) . await"), "{out}");
    }

    #[test]
    fn a_blocking_worker_without_payload_decodes_nothing() {
        let out = expanded(
            "blocking = true",
            "fn tidy_up(ctx: WorkerContext) -> Result<()> { Ok(()) }",
        );
        assert!(out.contains(r#"name : "tidy-up""#), "{out}");
        assert!(
            out.contains(":: worker_core :: __private :: run_blocking (ctx , move | ctx | { let output : :: worker_core :: Result < _ > = tidy_up (ctx) ; let output = :: worker_core :: __private :: serializable (output) ; output }) . await"),
            "{out}"
        );
        assert!(!out.contains("decode_payload"), "{out}");
    }

    #[test]
    fn blocking_false_is_an_ordinary_async_worker() {
        let out = expanded("blocking = false", OK_FN);
        assert!(out.contains("send_email (ctx , payload) . await"), "{out}");
        assert!(!out.contains("run_blocking"), "{out}");
    }

    #[test]
    fn a_blocking_async_fn_is_rejected_at_async() {
        assert_eq!(
            error("blocking", OK_FN),
            pair(
                "#[worker(blocking)] runs a plain `fn` on tokio's blocking pool; remove `async`",
                "async"
            )
        );
    }

    #[test]
    fn a_blocking_worker_is_told_the_plain_signature() {
        assert_eq!(
            errors("blocking", "fn resize(ctx: &WorkerContext) {}"),
            [
                pair(
                    "take the `WorkerContext` by value, not by reference; expected `fn name(ctx: WorkerContext[, payload: T]) -> Result<()>`",
                    "&WorkerContext"
                ),
                pair(
                    "#[worker] functions must return `Result<()>`, or `Result<T>` with `T: Serialize`; expected `fn name(ctx: WorkerContext[, payload: T]) -> Result<()>`",
                    ")"
                ),
            ]
        );
        assert_eq!(
            error("blocking", "struct Resize;"),
            pair(
                "#[worker(blocking)] can only be applied to a `fn`",
                "struct"
            )
        );
    }

    #[test]
    fn a_blocking_worker_is_checked_like_any_other() {
        assert_eq!(
            errors(
                r#"blocking, blocking, timeout = "0s""#,
                "const unsafe fn job<T>(ctx: WorkerContext, t: T) -> Result<()> { Ok(()) }"
            ),
            [
                pair("blocking given twice", "blocking"),
                pair("timeout must be greater than zero", r#""0s""#),
                pair("#[worker] functions can't be `const`", "const"),
                pair("#[worker] functions can't be `unsafe`", "unsafe"),
                pair(
                    "#[worker] functions can't be generic; the runtime calls them with concrete types",
                    "<T>"
                ),
            ]
        );
        assert_eq!(
            error(r#"blocking = "yes""#, BLOCKING_FN),
            pair(
                "`blocking` is a flag, set or not; write #[worker(blocking)] (or `blocking = true`) to run a plain `fn` on tokio's blocking pool",
                r#""yes""#
            )
        );
    }

    // --- names ---

    #[test]
    fn the_name_must_be_a_string_literal() {
        assert_eq!(error("send_email", OK_FN), pair(NAME_LITERAL, "send_email"));
        assert_eq!(error("NAME", OK_FN), pair(NAME_LITERAL, "NAME"));
        assert_eq!(
            error("crate::NAME", OK_FN),
            pair(NAME_LITERAL, "crate::NAME")
        );
        assert_eq!(error("42", OK_FN), pair(NAME_LITERAL, "42"));
        assert_eq!(error("name = NAME", OK_FN), pair(NAME_LITERAL, "NAME"));
        assert_eq!(error("name = 42", OK_FN), pair(NAME_LITERAL, "42"));
    }

    #[test]
    fn empty_whitespace_and_control_names_are_rejected_at_the_literal() {
        assert_eq!(
            error(r#""""#, OK_FN),
            pair("the worker name can't be empty", r#""""#)
        );
        assert_eq!(
            error(r#""send email""#, OK_FN),
            pair(
                r#"the worker name can't contain whitespace; use dashes, like "send-email""#,
                r#""send email""#
            )
        );
        assert_eq!(
            error(r#"name = "tab\there""#, OK_FN).0,
            r#"the worker name can't contain whitespace; use dashes, like "send-email""#
        );
        assert_eq!(
            error(r#""bell\u{7}""#, OK_FN).0,
            "the worker name can't contain control characters"
        );
    }

    #[test]
    fn a_name_that_is_all_underscores_cant_be_derived() {
        assert_eq!(
            error(
                "",
                "async fn __(ctx: WorkerContext) -> Result<()> { Ok(()) }"
            ),
            pair(
                r#"can't derive a worker name from `__`; give one, like #[worker("send-email")]"#,
                "__"
            )
        );
    }

    #[test]
    fn the_name_given_twice_is_reported_at_the_second() {
        assert_eq!(
            error(r#""a", name = "b""#, OK_FN),
            pair("name given twice", "name")
        );
        assert_eq!(
            error(r#"name = "a", name = "b""#, OK_FN),
            pair("name given twice", "name")
        );
    }

    #[test]
    fn the_name_goes_first() {
        assert_eq!(
            error(r#"timeout = "5s", "send-email""#, OK_FN),
            pair(
                r#"the worker name must be the first argument, like #[worker("send-email", timeout = "5s")]"#,
                r#""send-email""#
            )
        );
    }

    // --- options ---

    #[test]
    fn an_unknown_option_lists_the_known_ones() {
        assert_eq!(
            error(r#""a", foo = 1"#, OK_FN),
            pair(
                "unknown option `foo` for #[worker]; expected one of: `name`, `timeout`, `retries`, `backoff`, `backoff_max`, `concurrency`, `queue_limit`, `global_concurrency`, `rate`, `limit_by`, `key_concurrency`, `key_rate`, `priority`, `unique`, `every`, `cron`, `tz`, `local`, `blocking`",
                "foo"
            )
        );
        assert_eq!(
            error("weight = 3", OK_FN).0,
            "unknown option `weight` for #[worker]; expected one of: `name`, `timeout`, `retries`, `backoff`, `backoff_max`, `concurrency`, `queue_limit`, `global_concurrency`, `rate`, `limit_by`, `key_concurrency`, `key_rate`, `priority`, `unique`, `every`, `cron`, `tz`, `local`, `blocking`"
        );
        assert_eq!(
            error(r#""a", threads"#, OK_FN).0,
            "unknown option `threads` for #[worker]; expected one of: `name`, `timeout`, `retries`, `backoff`, `backoff_max`, `concurrency`, `queue_limit`, `global_concurrency`, `rate`, `limit_by`, `key_concurrency`, `key_rate`, `priority`, `unique`, `every`, `cron`, `tz`, `local`, `blocking`"
        );
    }

    #[test]
    fn every_policy_option_becomes_a_builder_call() {
        let out = expanded(
            r#""sync-crm", timeout = "30s", retries = 3, backoff = "2s", backoff_max = "1m", concurrency = 4, queue_limit = 100"#,
            OK_FN,
        );
        assert!(
            out.contains(
                ":: worker_core :: WorkerOptions :: new () \
                 . timeout (:: worker_core :: __private :: Duration :: new (30 , 0)) \
                 . retries (3) \
                 . backoff (:: worker_core :: __private :: Duration :: new (2 , 0)) \
                 . backoff_max (:: worker_core :: __private :: Duration :: new (60 , 0)) \
                 . concurrency (4) . queue_limit (100)"
            ),
            "{out}"
        );
    }

    #[test]
    fn policy_values_are_checked_each_at_its_token() {
        let found = errors(
            r#"retries = -1, backoff = "soon", backoff_max = 5, concurrency = 0, queue_limit = "ten""#,
            OK_FN,
        );
        assert_eq!(
            found,
            [
                pair(
                    "retries must be a whole number from 0 to 65534, like retries = 3",
                    "-1"
                ),
                pair(
                    "invalid backoff \"soon\": expected a number, found `s`; write a number and a unit (h, m, s, ms, us, ns), like \"500ms\", \"5s\" or \"1m30s\"",
                    "\"soon\""
                ),
                pair(
                    "backoff_max must be a string literal, like backoff_max = \"5m\"",
                    "5"
                ),
                pair(
                    "concurrency = 0 is too small: concurrency must be a whole number from 1 to 4294967295",
                    "0"
                ),
                pair(
                    "queue_limit must be a whole number from 0 to 4294967295, like queue_limit = 100",
                    "\"ten\""
                ),
            ]
        );
    }

    #[test]
    fn options_that_need_another_are_reported_at_their_key() {
        let found = errors(
            r#"queue_limit = 10, backoff = "1s", backoff_max = "5m""#,
            OK_FN,
        );
        assert_eq!(
            found,
            [
                pair(
                    "`queue_limit` needs `concurrency` or a limit (`global_concurrency`, `rate`, `key_concurrency`, `key_rate`): it bounds the runs waiting for a slot, like #[worker(concurrency = 4, queue_limit = 100)]",
                    "queue_limit"
                ),
                pair(
                    "`backoff` needs `retries`: without them nothing is retried, like #[worker(retries = 3, backoff = \"1s\")]",
                    "backoff"
                ),
                pair(
                    "`backoff_max` needs `retries`: without them nothing is retried, like #[worker(retries = 3, backoff_max = \"1s\")]",
                    "backoff_max"
                ),
            ]
        );
        assert_eq!(
            error(r#"retries = 2, backoff = "1m", backoff_max = "10s""#, OK_FN),
            pair(
                "`backoff_max` (10s) is shorter than `backoff` (60s): the cap must be at least the first delay",
                "backoff_max"
            )
        );
    }

    #[test]
    fn schedules_become_builder_calls() {
        let out = expanded(r#""cleanup", every = "15m", local"#, OK_FN);
        assert!(
            out.contains(
                ":: worker_core :: WorkerOptions :: new () . every (:: worker_core :: __private :: Duration :: new (900 , 0)) . local ()"
            ),
            "{out}"
        );
        let out = expanded(r#""nightly", cron = "0 3 * * *", tz = "UTC""#, OK_FN);
        assert!(
            out.contains(r#". cron ("0 3 * * *") . tz ("UTC")"#),
            "{out}"
        );
    }

    #[test]
    fn schedules_are_checked_at_compile_time() {
        assert_eq!(error(r#"cron = "0 25 * * *""#, OK_FN).1, r#""0 25 * * *""#);
        assert!(
            error(r#"cron = "0 25 * * *""#, OK_FN)
                .0
                .starts_with(r#"invalid cron expression "0 25 * * *": "#)
        );
        assert_eq!(
            errors(r#"every = "1m", cron = "* * * * *", local = true"#, OK_FN),
            [
                pair(
                    "`local` is a flag: write #[worker(local)] to keep this worker's runs in this process",
                    "true"
                ),
                pair(
                    "`every` and `cron` can't both be given: a worker has one schedule",
                    "cron"
                ),
            ]
        );
        assert_eq!(
            error(r#"tz = "UTC""#, OK_FN),
            pair(
                "`tz` needs `cron`: it is the zone the cron expression is read in, like #[worker(cron = \"0 3 * * *\", tz = \"Europe/Berlin\")]",
                "tz"
            )
        );
        if crate::zones::known("UTC").is_some() {
            assert_eq!(
                error(r#"cron = "0 3 * * *", tz = "Europe/Atlantis""#, OK_FN),
                pair(
                    "unknown time zone \"Europe/Atlantis\"; use an IANA name like \"Europe/Berlin\" or \"America/New_York\"",
                    "\"Europe/Atlantis\""
                )
            );
        }
    }

    #[test]
    fn limit_by_is_refused_on_a_scheduled_worker() {
        let (message, at) = error(
            r#"every = "1s", limit_by = "account", key_concurrency = 1"#,
            "async fn tick(ctx: WorkerContext, job: Job) -> Result<()> { Ok(()) }",
        );
        assert!(
            message.contains("`limit_by` can't go with `every` or `cron`"),
            "{message}"
        );
        assert_eq!(at, "limit_by");
    }

    // --- priority and unique ---

    #[test]
    fn priority_and_unique_become_builder_calls() {
        let out = expanded(r#""notify", priority = 5, unique = "user_id""#, OK_FN);
        assert!(
            out.contains(
                r#":: worker_core :: WorkerOptions :: new () . priority (5) . unique ("user_id")"#
            ),
            "{out}"
        );
        let out = expanded("priority = -1", OK_FN);
        assert!(
            out.contains(":: worker_core :: WorkerOptions :: new () . priority (- 1) }"),
            "{out}"
        );
    }

    #[test]
    fn unique_checks_the_field_against_the_payload_type() {
        let out = expanded(r#"unique = "user_id""#, OK_FN);
        assert!(
            out.contains("const _ : fn (Email) = | payload | { let _ = & payload . user_id ; } ;"),
            "{out}"
        );
        // Also for a blocking worker, and a keyword field is accessed raw.
        let out = expanded(r#"blocking, unique = "type""#, BLOCKING_FN);
        assert!(
            out.contains("const _ : fn (Job) = | payload | { let _ = & payload . r#type ; } ;"),
            "{out}"
        );
        assert!(out.contains(r#". unique ("type")"#), "{out}");
        // No `unique`, no check.
        assert!(!expanded("priority = 1", OK_FN).contains("const _ : fn"));
    }

    #[test]
    fn the_unique_field_is_accessed_at_the_literal() {
        let attr = tokens(r#"unique = "user_id""#);
        let literal = attr.clone().into_iter().nth(2).map(|t| t.span().start());
        let out = match try_expand(attr, tokens(OK_FN)) {
            Ok(out) => out,
            Err(err) => panic!("expected an expansion, got: {err}"),
        };
        // The `user_id` the expansion accesses, wherever it sits.
        fn find(tokens: TokenStream) -> Option<proc_macro2::Span> {
            tokens.into_iter().find_map(|token| match token {
                proc_macro2::TokenTree::Ident(ident) if ident == "user_id" => Some(ident.span()),
                proc_macro2::TokenTree::Group(group) => find(group.stream()),
                _ => None,
            })
        }
        let access = find(out).map(|span| span.start());
        assert!(access.is_some());
        assert_eq!(
            access.map(|at| (at.line, at.column)),
            literal.map(|at| (at.line, at.column))
        );
    }

    #[test]
    fn unique_needs_a_typed_payload() {
        let no_payload = "async fn cleanup(ctx: WorkerContext) -> Result<()> { Ok(()) }";
        assert_eq!(
            error(r#"unique = "user_id""#, no_payload),
            pair(
                "`unique` needs a typed payload: it names a field of the payload, and this worker takes only the `WorkerContext`; add a payload whose type has a field `user_id`, like `async fn name(ctx: WorkerContext, payload: T)`",
                r#""user_id""#
            )
        );
        assert!(
            error(
                r#"blocking, unique = "user_id""#,
                "fn cleanup(ctx: WorkerContext) -> Result<()> { Ok(()) }"
            )
            .0
            .ends_with("like `fn name(ctx: WorkerContext, payload: T)`")
        );
        // When the parameters themselves are wrong, that is the one error.
        assert_eq!(
            error(
                r#"unique = "user_id""#,
                "async fn cleanup(ctx: &WorkerContext) -> Result<()> { Ok(()) }"
            )
            .1,
            "&WorkerContext"
        );
    }

    #[test]
    fn bad_priority_and_unique_values_are_reported_at_the_value() {
        assert_eq!(
            errors(r#"priority = -2147483649, unique = "user id""#, OK_FN),
            [
                pair(
                    "priority = -2147483649 is too small: priority must be a whole number from -2147483648 to 2147483647",
                    "-2147483649"
                ),
                pair(
                    r#"unique = "user id" is not a field name; name a field of the payload as it is declared, like unique = "user_id""#,
                    r#""user id""#
                ),
            ]
        );
        assert_eq!(
            error(r#"priority = "high""#, OK_FN),
            pair(
                "priority must be a whole number from -2147483648 to 2147483647, like priority = 5 (higher starts first)",
                r#""high""#
            )
        );
        assert_eq!(
            error("unique = 5", OK_FN),
            pair(
                r#"unique must be a string literal, like unique = "user_id""#,
                "5"
            )
        );
    }

    // --- cluster-wide limits ---

    const SYNC_FN: &str =
        "async fn sync_crm(ctx: WorkerContext, job: SyncJob) -> Result<()> { Ok(()) }";

    #[test]
    fn limits_become_builder_calls() {
        let out = expanded(
            r#""sync-crm", concurrency = 4, global_concurrency = 16, rate = "100/1m", limit_by = "account_id", key_concurrency = 1, key_rate = "10/1m""#,
            SYNC_FN,
        );
        assert!(
            out.contains(
                r#":: worker_core :: WorkerOptions :: new () . concurrency (4) . global_concurrency (16) . rate ("100/1m") . limit_by ("account_id") . key_concurrency (1) . key_rate ("10/1m") }"#
            ),
            "{out}"
        );
        // Each alone, too: `key_rate` with its `limit_by`.
        let out = expanded(r#"limit_by = "account_id", key_rate = "5/1s""#, SYNC_FN);
        assert!(
            out.contains(r#". limit_by ("account_id") . key_rate ("5/1s") }"#),
            "{out}"
        );
    }

    #[test]
    fn rates_reach_the_runtime_in_its_own_notation() {
        // The runtime's parser knows `us` but not `µs`, and prints `1m`
        // for sixty seconds: the macro hands over what it would print.
        let out = expanded(
            r#"rate = "0100/60s", limit_by = "a", key_rate = "2/1500µs""#,
            SYNC_FN,
        );
        assert!(
            out.contains(r#". rate ("100/1m") . limit_by ("a") . key_rate ("2/1ms500us")"#),
            "{out}"
        );
    }

    #[test]
    fn limit_by_checks_the_field_against_the_payload_type() {
        let out = expanded(
            r#"unique = "user_id", limit_by = "account_id", key_concurrency = 1"#,
            SYNC_FN,
        );
        for field in ["user_id", "account_id"] {
            let check = format!(
                "const _ : fn (SyncJob) = | payload | {{ let _ = & payload . {field} ; }} ;"
            );
            assert!(out.contains(&check), "missing `{check}` in:\n{out}");
        }
        // A keyword field is accessed raw, as for `unique`.
        let out = expanded(
            r#"blocking, limit_by = "type", key_concurrency = 1"#,
            BLOCKING_FN,
        );
        assert!(
            out.contains("const _ : fn (Job) = | payload | { let _ = & payload . r#type ; } ;"),
            "{out}"
        );
        assert!(out.contains(r#". limit_by ("type")"#), "{out}");
    }

    #[test]
    fn limit_values_are_checked_each_at_its_token() {
        let found = errors(
            r#"global_concurrency = 0, rate = "100", limit_by = "account id", key_concurrency = -1, key_rate = 10"#,
            SYNC_FN,
        );
        assert_eq!(
            found,
            [
                pair(
                    "global_concurrency = 0 is too small: global_concurrency must be a whole number from 1 to 4294967295",
                    "0"
                ),
                pair(
                    r#"invalid rate "100": it has no `/` between the count and the period; write a count, a slash and a period (units h, m, s, ms, us, ns), like "100/1m", "10/1s" or "5000/1h""#,
                    r#""100""#
                ),
                pair(
                    r#"limit_by = "account id" is not a field name; name a field of the payload as it is declared, like limit_by = "account_id""#,
                    r#""account id""#
                ),
                pair(
                    "key_concurrency must be a whole number from 1 to 4294967295, like key_concurrency = 1",
                    "-1"
                ),
                pair(
                    r#"key_rate must be a string literal, like key_rate = "10/1m""#,
                    "10"
                ),
            ]
        );
        assert_eq!(
            error("global_concurrency = many", SYNC_FN),
            pair(
                "global_concurrency must be a whole number from 1 to 4294967295, like global_concurrency = 16",
                "many"
            )
        );
    }

    #[test]
    fn a_malformed_rate_is_explained_at_the_literal() {
        let hint = r#"write a count, a slash and a period (units h, m, s, ms, us, ns), like "100/1m", "10/1s" or "5000/1h""#;
        assert_eq!(
            error(r#"rate = "10/1d""#, SYNC_FN),
            pair(
                format!(r#"invalid rate "10/1d": in the period, unknown unit `d`; {hint}"#),
                r#""10/1d""#
            )
        );
        for (bad, reason) in [
            ("0/1m", "the count must be at least 1"),
            ("x/1m", "`x` is not a whole number of starts"),
            ("10/0s", "the period must be at least 1ms"),
            ("10/m", "in the period, expected a number, found `m`"),
            ("10 / 1m", "spaces are not allowed"),
        ] {
            assert_eq!(
                error(&format!("rate = {bad:?}"), SYNC_FN),
                pair(
                    format!("invalid rate {bad:?}: {reason}; {hint}"),
                    &format!("{bad:?}")
                ),
            );
        }
        let (message, at) = error(r#"limit_by = "a", key_rate = "1/1week""#, SYNC_FN);
        assert!(
            message.starts_with(
                r#"invalid key_rate "1/1week": in the period, unknown unit `week`; write"#
            ),
            "{message}"
        );
        assert_eq!(at, r#""1/1week""#);
    }

    #[test]
    fn key_limits_and_limit_by_need_each_other() {
        assert_eq!(
            errors(r#"key_concurrency = 1, key_rate = "10/1m""#, SYNC_FN),
            [
                pair(
                    r#"`key_concurrency` needs `limit_by`: it applies to each value of the payload field that `limit_by` names, like #[worker(limit_by = "account_id", key_concurrency = 1)]"#,
                    "key_concurrency"
                ),
                pair(
                    r#"`key_rate` needs `limit_by`: it applies to each value of the payload field that `limit_by` names, like #[worker(limit_by = "account_id", key_rate = "10/1m")]"#,
                    "key_rate"
                ),
            ]
        );
        // The whole-worker limits don't key anything.
        assert_eq!(
            error(
                r#"limit_by = "account_id", global_concurrency = 4, rate = "1/1s""#,
                SYNC_FN
            ),
            pair(
                r#"`limit_by` needs `key_concurrency` or `key_rate`: it names the payload field whose values those limits apply to, like #[worker(limit_by = "account_id", key_concurrency = 1)]; to limit the worker as a whole, use `global_concurrency` or `rate`"#,
                "limit_by"
            )
        );
        // An invalid value still counts as given: one error, about the value.
        assert_eq!(
            error(r#"limit_by = "account_id", key_concurrency = 0"#, SYNC_FN).1,
            "0"
        );
    }

    #[test]
    fn limit_by_needs_a_typed_payload() {
        assert_eq!(
            error(
                r#"limit_by = "account_id", key_concurrency = 1"#,
                "async fn sync(ctx: WorkerContext) -> Result<()> { Ok(()) }"
            ),
            pair(
                "`limit_by` needs a typed payload: it names a field of the payload, and this worker takes only the `WorkerContext`; add a payload whose type has a field `account_id`, like `async fn name(ctx: WorkerContext, payload: T)`",
                r#""account_id""#
            )
        );
    }

    #[test]
    fn an_option_given_twice_is_reported_at_the_second() {
        let attr = r#"timeout = "5s", timeout = "6s""#;
        assert_eq!(error(attr, OK_FN), pair("timeout given twice", "timeout"));
        // The second `timeout`, not the first.
        let second = tokens(attr).into_iter().nth(4).map(|t| t.span().start());
        let reported = try_expand(tokens(attr), tokens(OK_FN))
            .err()
            .map(|err| err.span().start());
        assert_eq!(
            reported.map(|at| at.column),
            second.map(|at| at.column),
            "reported at the wrong `timeout`"
        );
    }

    #[test]
    fn an_option_given_twice_is_reported_even_if_the_first_was_invalid() {
        let found = errors(r#"timeout = "0s", timeout = "0s""#, OK_FN);
        let messages: Vec<&str> = found.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            messages,
            ["timeout must be greater than zero", "timeout given twice"]
        );
    }

    #[test]
    fn an_option_needs_a_value() {
        assert_eq!(
            error("timeout", OK_FN),
            pair(r#"`timeout` needs a value, like timeout = "5s""#, "timeout")
        );
        assert_eq!(
            error(r#""a", timeout ="#, OK_FN),
            pair(r#"expected a value after `=`, like timeout = "5s""#, "=")
        );
    }

    #[test]
    fn empty_arguments_are_rejected_at_the_comma() {
        assert_eq!(
            error(r#""a",, timeout = "5s""#, OK_FN),
            pair("expected an argument before `,`", ",")
        );
    }

    #[test]
    fn a_stray_expression_is_not_an_option() {
        assert_eq!(
            error(r#""a", 5"#, OK_FN),
            pair(
                r#"expected an option written `key = value`, like `timeout = "5s"`"#,
                "5"
            )
        );
    }

    // --- timeouts ---

    #[test]
    fn a_malformed_timeout_is_explained_at_the_literal() {
        assert_eq!(
            error(r#"timeout = "5x""#, OK_FN),
            pair(
                r#"invalid timeout "5x": unknown unit `x`; write a number and a unit (h, m, s, ms, us, ns), like "500ms", "5s" or "1m30s""#,
                r#""5x""#
            )
        );
        for (bad, reason) in [
            ("", "it is empty"),
            ("5", "missing unit after `5`"),
            (
                "30s1m",
                "`m` comes after `s`; write units from largest to smallest",
            ),
            ("1s1s", "unit `s` is given twice"),
            ("5 s", "spaces are not allowed"),
            ("99999999999999999999h", "it is too large"),
        ] {
            let (message, _) = error(&format!("timeout = {bad:?}"), OK_FN);
            let expected = format!("invalid timeout {bad:?}: {reason}; write a number");
            assert!(message.starts_with(&expected), "{message}");
        }
    }

    #[test]
    fn a_zero_timeout_is_rejected() {
        assert_eq!(
            error(r#"timeout = "0ms""#, OK_FN),
            pair("timeout must be greater than zero", r#""0ms""#)
        );
    }

    #[test]
    fn a_timeout_must_be_a_string() {
        let message = r#"timeout must be a string literal, like timeout = "5s""#;
        assert_eq!(error("timeout = 5", OK_FN), pair(message, "5"));
        assert_eq!(
            error("timeout = Duration::from_secs(5)", OK_FN),
            pair(message, "Duration::from_secs(5)")
        );
    }
}
