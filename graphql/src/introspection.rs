//! Introspection with its own depth limit.
//!
//! async-graphql counts one depth for a whole document, and the query every
//! GraphQL tool sends to learn a schema (GraphiQL's, graphql-js
//! `getIntrospectionQuery`) nests `ofType` far deeper than a sane limit for
//! data queries: with `--graphql-max-depth 10` GraphiQL could not load the
//! schema. Raising the limit for everyone would give it up for data queries,
//! so a document whose operation asks only for `__schema`, `__type` or
//! `__typename` runs on a second schema that answers introspection and
//! nothing else (async-graphql's `introspection_only`), with a depth limit
//! of its own. Introspection resolves from the in-memory registry, so the
//! deeper limit costs no database work; a document that mixes in a data
//! field stays on the main schema and its limit.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{EmptySubscription, Schema};

use crate::{Backend, MutationRoot, QueryRoot, SchemaLimits, TidingsSchema};

/// Deepest introspection document accepted. graphql-js's standard query
/// (nine levels of `ofType`) is 13 deep; this leaves room for tools that
/// ask for a little more without letting a document nest without end.
pub const INTROSPECTION_MAX_DEPTH: usize = 20;

/// The schema for pure introspection documents; `None` when introspection
/// is switched off (then every document goes to the main schema, which
/// refuses it).
pub fn build_introspection_schema(
    backend: Arc<dyn Backend>,
    limits: &SchemaLimits,
) -> Option<TidingsSchema> {
    limits.introspection.then(|| {
        Schema::build(
            QueryRoot::default(),
            MutationRoot::default(),
            EmptySubscription,
        )
        .data(backend)
        .introspection_only()
        .limit_depth(INTROSPECTION_MAX_DEPTH.max(limits.max_depth))
        .limit_complexity(limits.max_complexity)
        .limit_directives(limits.max_directives)
        .finish()
    })
}

/// Whether the operation that would run asks for introspection only.
/// A document that does not parse, or names an operation it does not hold,
/// is not introspection: the main schema answers it with the proper error.
pub fn is_introspection_only(query: &str, operation_name: Option<&str>) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => &operation.node,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => &operation.node,
            None => return false,
        },
        (DocumentOperations::Multiple(operations), None) => match operations.values().next() {
            Some(operation) if operations.len() == 1 => &operation.node,
            _ => return false,
        },
    };
    operation.ty == OperationType::Query
        && selects_only_introspection(
            &document,
            &operation.selection_set.node,
            &mut HashSet::new(),
        )
}

/// Checks the top level of a selection, following fragments; `seen` stops
/// a fragment cycle (which validation refuses later) from looping here.
fn selects_only_introspection<'a>(
    document: &'a ExecutableDocument,
    selection: &'a SelectionSet,
    seen: &mut HashSet<&'a str>,
) -> bool {
    selection.items.iter().all(|item| match &item.node {
        Selection::Field(field) => matches!(
            field.node.name.node.as_str(),
            "__schema" | "__type" | "__typename"
        ),
        Selection::InlineFragment(fragment) => {
            selects_only_introspection(document, &fragment.node.selection_set.node, seen)
        }
        Selection::FragmentSpread(spread) => {
            let name = spread.node.fragment_name.node.as_str();
            if !seen.insert(name) {
                return false;
            }
            document.fragments.get(name).is_some_and(|fragment| {
                selects_only_introspection(document, &fragment.node.selection_set.node, seen)
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::is_introspection_only;

    #[test]
    fn schema_and_type_queries_are_introspection() {
        assert!(is_introspection_only(
            "{ __schema { queryType { name } } }",
            None
        ));
        assert!(is_introspection_only(
            "query Q { ...F } fragment F on Query { __type(name: \"User\") { name } __typename }",
            None
        ));
        assert!(is_introspection_only(
            "query A { me { id } } query IntrospectionQuery { __schema { types { name } } }",
            Some("IntrospectionQuery")
        ));
    }

    #[test]
    fn anything_else_is_not() {
        assert!(!is_introspection_only(
            "{ __schema { queryType { name } } me { id } }",
            None
        ));
        assert!(!is_introspection_only(
            "{ ... on Query { me { id } } }",
            None
        ));
        assert!(!is_introspection_only("mutation { __typename }", None));
        assert!(!is_introspection_only(
            "query A { __typename } query B { me { id } }",
            None
        ));
        assert!(!is_introspection_only("query A { __typename }", Some("B")));
        assert!(!is_introspection_only("{ __schema ", None));
        assert!(!is_introspection_only(
            "{ ...F } fragment F on Query { ...G } fragment G on Query { ...F }",
            None
        ));
    }
}
