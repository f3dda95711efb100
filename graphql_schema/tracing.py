"""A span per GraphQL operation (OpenTelemetry's API only: the provider is the gateway's, in the context).

Named as OpenTelemetry's GraphQL conventions say (`query Dashboard`, `mutation`, a bare type for an anonymous
operation, `GraphQL Operation` when the document names none it can run; a name only as the document defines it,
graphql_schema.operation_names), with `graphql.operation.type` and
`graphql.operation.name`, and `tracking.graphql.path` (compiled or generic) for queries. The document itself
(`graphql.document`) is left out: its arguments and variables can be task data.

A subscription's span covers its start only (parsing, validation, the subscribe call); its stream's openings
are spans of their own (models.tracing.StreamSpan), and each event it delivers is none."""

from __future__ import annotations

from collections.abc import Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from graphql_schema.context import Context
from graphql_schema.operation_names import executed_operation, recorded_name

UNNAMED = "GraphQL Operation"


class OperationSpans(SchemaExtension):
    """Starts each operation's span, current while the operation runs (its MongoDB commands are its children);
    nothing at all when the gateway traces nothing."""

    _span: Span | None = None
    _raised = False

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        tracer = context.tracer if isinstance(context, Context) else None
        if tracer is None:
            yield
            return
        self._span = tracer.start_span(UNNAMED)
        token = otel_context.attach(trace.set_span_in_context(self._span))
        try:
            yield
        except Exception:
            # Raised through the operation (a refusal before execution, a limit's error, no operation to run):
            # Strawberry answers it as one error, or refuses the request.
            self._raised = True
            raise
        finally:
            self._end()
            otel_context.detach(token)

    def on_execute(self) -> Iterator[None]:
        yield
        if self._span is not None and self._operation_type() is OperationType.SUBSCRIPTION:
            self._end()  # its start is done: a span open for the subscription's life would never be seen

    def _operation_type(self) -> OperationType | None:
        try:
            return self.execution_context.operation_type
        except RuntimeError:  # no document (it did not parse)
            return None

    def _end(self) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        operation = executed_operation(self.execution_context)
        if operation is not None:
            kind, name = operation.operation.value, recorded_name(operation)
            span.update_name(f"{kind} {name}" if name else kind)
            span.set_attribute("graphql.operation.type", kind)
            if name:
                span.set_attribute("graphql.operation.name", name)
        result = self.execution_context.result
        errors = getattr(result, "errors", None) or self.execution_context.pre_execution_errors
        count = len(errors) if errors else int(self._raised)
        if count:
            span.set_attribute("tracking.graphql.errors", count)
            span.set_status(StatusCode.ERROR)
        span.end()
