//! Per-user rate limit on GraphQL mutations (`--mutations-per-minute`,
//! `--mutations-burst`), checked at the HTTP edge before execution.
//!
//! Without it one signed-in user could run `sendMessage` as fast as the
//! server answers (620–760 a second of 16 KB messages in issue 16), each
//! fanned out to every member. The cost of a request is the number of
//! mutation fields at its root (aliases count one each, fragments are
//! looked into), so a request of twenty aliased `sendMessage`s costs twenty.
//! A refused request runs nothing: it gets one error with `extensions.code`
//! `RATE_LIMITED` and `extensions.retryAfterMs`.

use std::collections::HashSet;
use std::time::Instant;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, ServerError};

use crate::state::AppState;

/// Refuses the request when `user` has no tokens left for its mutations.
pub fn check(
    app: &AppState,
    user: uuid::Uuid,
    request: &async_graphql::Request,
) -> Result<(), ServerError> {
    let cost = mutation_fields(&request.query, request.operation_name.as_deref());
    if cost == 0 {
        return Ok(());
    }
    let limit = app.mutation_rate().take_at(user, cost, Instant::now());
    let Err(wait) = limit else {
        return Ok(());
    };
    tracing::info!(user_id = %user, cost, "mutations rate limited");
    let (message, retry_after_ms) = match wait {
        Some(wait) => (
            format!(
                "too many mutations; retry in {} ms",
                wait.as_millis().max(1)
            ),
            Some(u64::try_from(wait.as_millis().max(1)).unwrap_or(u64::MAX)),
        ),
        None => (
            format!(
                "this request holds {cost} mutations, more than the {} allowed at once",
                app.config().mutations_burst
            ),
            None,
        ),
    };
    let mut error = ServerError::new(message, None);
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", "RATE_LIMITED");
    if let Some(ms) = retry_after_ms {
        extensions.set("retryAfterMs", ms);
    }
    Err(error)
}

/// Root fields of the mutation the request would run; 0 for a query, or
/// for a document that does not parse (execution reports that itself).
fn mutation_fields(query: &str, operation_name: Option<&str>) -> u32 {
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return 0;
    };
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(op),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops.values().next(),
        (DocumentOperations::Multiple(_), None) => None,
    };
    match operation {
        Some(op) if op.node.ty == OperationType::Mutation => {
            count(&document, &op.node.selection_set.node, &mut HashSet::new())
        }
        _ => 0,
    }
}

/// `seen` stops a fragment that spreads itself (invalid, but it must not
/// loop here before validation refuses it).
fn count(document: &ExecutableDocument, set: &SelectionSet, seen: &mut HashSet<Name>) -> u32 {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(inline) => {
                count(document, &inline.node.selection_set.node, seen)
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                match document.fragments.get(name) {
                    Some(fragment) if seen.insert(name.clone()) => {
                        count(document, &fragment.node.selection_set.node, seen)
                    }
                    _ => 0,
                }
            }
        })
        .fold(0u32, u32::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::mutation_fields;

    #[test]
    fn the_cost_is_the_number_of_root_mutation_fields() {
        assert_eq!(mutation_fields("{ me { id } }", None), 0);
        assert_eq!(mutation_fields("query { me { id } }", None), 0);
        assert_eq!(
            mutation_fields(
                "mutation { a: signUp(username: \"x\") { id } b: signUp(username: \"y\") { id } }",
                None
            ),
            2
        );
        let fragments = "mutation M { ...F ... on MutationRoot { c: x } } \
                         fragment F on MutationRoot { a: x b: x ...F }";
        assert_eq!(mutation_fields(fragments, None), 3);
        let named = "query Q { me { id } } mutation M { x y }";
        assert_eq!(mutation_fields(named, Some("M")), 2);
        assert_eq!(mutation_fields(named, Some("Q")), 0);
        assert_eq!(mutation_fields(named, None), 0);
        assert_eq!(mutation_fields("mutation {", None), 0);
    }
}
