//! Output: the function unchanged, its typed call site (see `call_site`),
//! then a hidden shim and its registration.

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use std::time::Duration;

use super::call_site::call_site;
use super::parse::PayloadField;
use super::validate::{Options, Worker};

/// `item` (the function exactly as written), its typed call site's struct
/// (see [`call_site`]), then
///
/// ```text
/// const _: () = {
///     // the typed call site's trait and impls
///     …
///     fn __worker_core_shim(ctx: ::worker_core::WorkerContext)
///         -> impl Future<Output = Result<impl Serialize + Send + 'static>> + Send + 'static
///     {
///         async move {
///             let payload = ::worker_core::__private::decode_payload::<Payload>(&ctx)?;
///             let output: ::worker_core::Result<_> = user_fn(ctx, payload).await;
///             let output = serializable(output); // `T: Serialize`, checked at the return type
///             output
///         }
///     }
///     fn __worker_core_launcher() -> ::worker_core::__private::Launcher {
///         ::worker_core::__private::Launcher::new(__worker_core_shim)
///     }
///     fn __worker_core_options() -> ::worker_core::WorkerOptions {
///         ::worker_core::WorkerOptions::new().timeout(Duration::new(secs, nanos))
///     }
///     // One per field `unique` or `limit_by` names: see `field_check`.
///     const _: fn(Payload) = |payload| { let _ = &payload.user_id; };
///     ::worker_core::__private::inventory::submit! {
///         ::worker_core::__private::WorkerRegistration { name, options: __worker_core_options, launcher: __worker_core_launcher, module_path, file, line }
///     }
/// };
/// ```
///
/// The shim's future is not boxed: the launcher is generic over it, so each
/// run's task holds it inline. A `blocking` worker's shim decodes the
/// payload the same way, then hands the call to the blocking pool:
///
/// ```text
///         async move {
///             let payload = ::worker_core::__private::decode_payload::<Payload>(&ctx)?;
///             ::worker_core::__private::run_blocking(ctx, move |ctx| {
///                 let output: ::worker_core::Result<_> = user_fn(ctx, payload);
///                 let output = serializable(output);
///                 output
///             })
///             .await
///         }
/// ```
///
/// Pieces carry the span of the user's token they stand for, so the
/// compiler's type errors land there: a payload that isn't
/// `DeserializeOwned` on the payload type, a wrong `Result` on the return
/// type, a future (or, for `blocking`, a payload) that isn't `Send` on the
/// function name.
pub(super) fn worker(item: TokenStream, worker: &Worker) -> TokenStream {
    // Mixed-site locals can't collide with the user's function, even one
    // named `ctx` or `payload`.
    let ctx = Ident::new("ctx", Span::mixed_site());
    let payload = Ident::new("payload", Span::mixed_site());
    let output = Ident::new("output", Span::mixed_site());
    let user_fn = worker.ident;

    // The argument sits at the user's context type, so "expected
    // `worker_core::WorkerContext`" points there if it is some other type.
    let context_arg = Ident::new("ctx", Span::mixed_site().located_at(worker.context.span()));

    let (decode, args) = match worker.payload {
        Some(payload_ty) => {
            let decode = quote_spanned! {payload_ty.span()=>
                let #payload = ::worker_core::__private::decode_payload::<#payload_ty>(&#ctx)?;
            };
            (decode, quote!(#context_arg, #payload))
        }
        None => (TokenStream::new(), quote!(#context_arg)),
    };

    // The whole call sits at the return type (the name too, or the span
    // would run from the name to the type), so "expected `Result<(),
    // Error>`, found `Result<u32, Error>`" underlines just `Result<u32>`.
    // The name keeps its own hygiene and only borrows the location.
    let output_span = worker.output.span();
    // The same local, reported at the return type: where a missing
    // `Serialize` on the output is the user's to fix.
    let returned = Ident::new("output", Span::mixed_site().located_at(output_span));
    let mut callee = user_fn.clone();
    callee.set_span(user_fn.span().located_at(output_span));
    let shim_body = if worker.blocking {
        // The closure's `ctx` is the one `run_blocking` passes back on the
        // blocking thread; it shadows the shim's, which has moved by then.
        let call = quote_spanned! {output_span=>
            let #output: ::worker_core::Result<_> = #callee(#args);
            let #output = ::worker_core::__private::serializable(#returned);
        };
        quote_spanned! {user_fn.span()=>
            async move {
                #decode
                ::worker_core::__private::run_blocking(#ctx, move |#ctx| {
                    #call
                    #output
                })
                .await
            }
        }
    } else {
        let call = quote_spanned! {output_span=>
            let #output: ::worker_core::Result<_> = #callee(#args).await;
            let #output = ::worker_core::__private::serializable(#returned);
        };
        quote_spanned! {user_fn.span()=>
            async move {
                #decode
                #call
                #output
            }
        }
    };

    let name = &worker.name;
    let options = options(&worker.options);
    let field_checks = [&worker.options.unique, &worker.options.limit_by]
        .into_iter()
        .flatten()
        .map(|field| field_check(field, worker.payload));
    // `file!()` and `line!()` at the function's name report where the worker
    // is defined rather than where the attribute starts.
    let location = quote_spanned! {user_fn.span()=>
        module_path: ::core::module_path!(),
        file: ::core::file!(),
        line: ::core::line!(),
    };

    // The return type sits at the fn's name, so "future cannot be sent
    // between threads safely" points at the worker.
    let shim_output = quote_spanned! {user_fn.span()=>
        impl ::core::future::Future<
            Output = ::worker_core::Result<
                impl ::worker_core::__private::Serialize + ::core::marker::Send + 'static,
            >,
        > + ::core::marker::Send + 'static
    };
    let call_site = call_site(worker);
    let call_site_item = call_site.item;
    let call_site_impls = call_site.impls;
    quote! {
        #item
        #call_site_item
        const _: () = {
            #call_site_impls
            fn __worker_core_shim(#ctx: ::worker_core::WorkerContext) -> #shim_output {
                #shim_body
            }
            fn __worker_core_launcher() -> ::worker_core::__private::Launcher {
                ::worker_core::__private::Launcher::new(__worker_core_shim)
            }
            fn __worker_core_options() -> ::worker_core::WorkerOptions {
                ::worker_core::WorkerOptions::new() #options
            }
            #(#field_checks)*
            ::worker_core::__private::inventory::submit! {
                ::worker_core::__private::WorkerRegistration {
                    name: #name,
                    options: __worker_core_options,
                    launcher: __worker_core_launcher,
                    #location
                }
            }
        };
    }
}

/// `.timeout(…).retries(…)…`: one builder call per option given.
fn options(options: &Options) -> TokenStream {
    let duration = |d: Duration| {
        let secs = Literal::u64_unsuffixed(d.as_secs());
        let nanos = Literal::u32_unsuffixed(d.subsec_nanos());
        quote!(::worker_core::__private::Duration::new(#secs, #nanos))
    };
    let mut calls = TokenStream::new();
    if let Some(d) = options.timeout {
        let d = duration(d);
        calls.extend(quote!(.timeout(#d)));
    }
    if let Some(n) = options.retries {
        let n = Literal::u32_unsuffixed(n);
        calls.extend(quote!(.retries(#n)));
    }
    if let Some(d) = options.backoff {
        let d = duration(d);
        calls.extend(quote!(.backoff(#d)));
    }
    if let Some(d) = options.backoff_max {
        let d = duration(d);
        calls.extend(quote!(.backoff_max(#d)));
    }
    if let Some(n) = options.concurrency {
        let n = Literal::usize_unsuffixed(n);
        calls.extend(quote!(.concurrency(#n)));
    }
    if let Some(n) = options.queue_limit {
        let n = Literal::usize_unsuffixed(n);
        calls.extend(quote!(.queue_limit(#n)));
    }
    if let Some(n) = options.global_concurrency {
        let n = Literal::usize_unsuffixed(n);
        calls.extend(quote!(.global_concurrency(#n)));
    }
    if let Some(rate) = options.rate {
        let rate = rate.to_string();
        calls.extend(quote!(.rate(#rate)));
    }
    if let Some(field) = &options.limit_by {
        let name = &field.name;
        calls.extend(quote!(.limit_by(#name)));
    }
    if let Some(n) = options.key_concurrency {
        let n = Literal::usize_unsuffixed(n);
        calls.extend(quote!(.key_concurrency(#n)));
    }
    if let Some(rate) = options.key_rate {
        let rate = rate.to_string();
        calls.extend(quote!(.key_rate(#rate)));
    }
    if let Some(n) = options.priority {
        let n = Literal::i32_unsuffixed(n);
        calls.extend(quote!(.priority(#n)));
    }
    if let Some(field) = &options.unique {
        let name = &field.name;
        calls.extend(quote!(.unique(#name)));
    }
    if let Some(d) = options.every {
        let d = duration(d);
        calls.extend(quote!(.every(#d)));
    }
    if let Some(expression) = &options.cron {
        calls.extend(quote!(.cron(#expression)));
    }
    if let Some(zone) = &options.tz {
        calls.extend(quote!(.tz(#zone)));
    }
    if options.local {
        calls.extend(quote!(.local()));
    }
    calls
}

/// For a payload field named by `unique = "user_id"` or `limit_by = "…"`:
///
/// ```text
/// const _: fn(Payload) = |payload| { let _ = &payload.user_id; };
/// ```
///
/// Never called, only type-checked: it compiles exactly when the payload
/// type has that field and it is visible here, which the runtime can't
/// check until a call arrives. The field carries the span of the
/// attribute's literal, so rustc's "no field `user_id` on type `Email`"
/// (with the fields there are) underlines the literal.
fn field_check(field: &PayloadField, payload: Option<&Type>) -> TokenStream {
    // Without a payload `validate` has already refused the field.
    let Some(payload_ty) = payload else {
        return TokenStream::new();
    };
    let payload = Ident::new("payload", Span::mixed_site());
    let access = &field.access;
    let borrow = quote_spanned! {access.span()=> &#payload.#access };
    quote! {
        const _: fn(#payload_ty) = |#payload| {
            let _ = #borrow;
        };
    }
}
