//! Reading the function an attribute macro is applied to, shared by
//! `#[worker]` and `#[auto_discover]`.

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Item, Signature, Visibility};

use crate::ctxt::Ctxt;

/// A function up to its body.
pub(crate) struct FnHead {
    /// `pub`, `pub(crate)`, … as written; `#[worker]` gives its typed call
    /// site the same.
    pub(crate) vis: Visibility,
    pub(crate) signature: Signature,
}

/// Parses `item` far enough to know its visibility and signature; the body
/// stays unparsed tokens, so half-typed code inside it doesn't break the
/// macro while the user is editing. Anything other than a function reports
/// `not_a_fn` at the item's keyword (`struct`, `impl`, …).
pub(crate) fn head(item: TokenStream, cx: &mut Ctxt, not_a_fn: &str) -> Option<FnHead> {
    let parser = |input: ParseStream| -> syn::Result<FnHead> {
        input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let signature: Signature = input.parse()?;
        match input.parse::<TokenTree>()? {
            TokenTree::Group(body) if body.delimiter() == Delimiter::Brace => {
                Ok(FnHead { vis, signature })
            }
            other => Err(syn::Error::new(other.span(), "expected the function body")),
        }
    };
    match parser.parse2(item.clone()) {
        Ok(head) => Some(head),
        Err(err) => {
            match syn::parse2::<Item>(item) {
                Ok(other) if !matches!(other, Item::Fn(_)) => report_not_a_fn(cx, &other, not_a_fn),
                // Not valid Rust: syn's own error is the useful one.
                _ => cx.syn_error(err),
            }
            None
        }
    }
}

fn report_not_a_fn(cx: &mut Ctxt, item: &Item, message: &str) {
    let span = match item {
        Item::Const(item) => item.const_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::ExternCrate(item) => item.extern_token.span,
        Item::ForeignMod(item) => item.abi.extern_token.span,
        Item::Impl(item) => item.impl_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Struct(item) => item.struct_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::TraitAlias(item) => item.trait_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Union(item) => item.union_token.span,
        Item::Use(item) => item.use_token.span,
        other => {
            cx.error_spanned_by(other, message);
            return;
        }
    };
    cx.error(span, message);
}
