"""The OpenAPI document made exact: the rules the handlers enforce, written into the schemas.

Litestar writes the document from the handlers' types; what those types do not say, the gateway's
rules do, and they are written in here from the same constants (domain/sending.py, each channel's
validity bounds, the history limits, the strict input bounds), so the document cannot drift from
them:

- constraints: `to`'s E.164 shape, lengths of `reference`, `text`, `callbackUrl` and template
  parameters, each channel's `validitySeconds` bounds, `limit` as an integer from 1 to 1,000,
  `date-time` formats on every time, the status query's ids;
- one shared schema per enum (`Channel`, `DeliveryStatus`, `Encoding`), referenced everywhere;
- response headers: `Location` and `Idempotent-Replayed` on a send's 202, `Link` on a history
  page, `WWW-Authenticate` on 401, `Retry-After` on 429, 500 and 503;
- problems: 415 on the operations that read a body, 429 on every partner operation, each with
  an example made by the very code that answers it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

import msgspec
from litestar.openapi.spec import (
    Example,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType

from partner_gateway.api.history import E164_SHAPE
from partner_gateway.api.inbound import PATH as INBOUND_PATH
from partner_gateway.api.problems import (
    PROBLEM_MEDIA_TYPE,
    ProblemError,
    invalid,
    not_found,
    to_problem,
    unauthorized,
)
from partner_gateway.api.query_params import DEFAULT_LIMIT, MAX_LIMIT
from partner_gateway.api.sending import IDEMPOTENCY_KEY_MAX
from partner_gateway.api.server import MAX_REQUEST_TARGET
from partner_gateway.api.stats import BUCKETS
from partner_gateway.api.strict_input import unsupported_media_type
from partner_gateway.channels.registry import ChannelRegistry
from partner_gateway.domain import sending
from partner_gateway.domain.inbound import MAX_NUMBER
from partner_gateway.domain.statuses import DeliveryStatus
from partner_gateway.errors import IdempotencyConflict

E164_PATTERN: Final = f"^{E164_SHAPE.pattern}$"
NOT_BLANK: Final = r"\S"
TIMES: Final = frozenset(
    {"createdAt", "updatedAt", "readAt", "occurredAt", "recordedAt", "providerOccurredAt", "receivedAt"}
)
_REF = "#/components/schemas/"


def complete_document(document: OpenAPI, channels: ChannelRegistry, max_query_ids: int) -> None:
    """Write the gateway's rules into `document` (in place; see the module's docstring)."""
    schemas = document.components.schemas if document.components else {}
    _shared_enums(document, schemas, channels)
    _send_constraints(schemas, channels)
    _query_constraints(schemas, max_query_ids)
    _closed_objects(schemas, channels)
    _one_content_kind(schemas)
    _stats_schemas(schemas)
    for schema in schemas.values():
        for name, prop in (schema.properties or {}).items():
            if name in TIMES:
                _set_format(prop, "date-time")
    for path, operation in _operations(document):
        _parameters(path, operation)
        _headers_and_problems(path, operation)


# -- enums ------------------------------------------------------------------------------------


def _shared_enums(document: OpenAPI, schemas: dict[str, Any], channels: ChannelRegistry) -> None:
    schemas["Channel"] = Schema(type=OpenAPIType.STRING, enum=list(channels.names), title="Channel")
    schemas["DeliveryStatus"] = Schema(
        type=OpenAPIType.STRING, enum=[status.value for status in DeliveryStatus], title="DeliveryStatus"
    )
    schemas["Encoding"] = Schema(
        type=OpenAPIType.STRING,
        enum=["GSM7", "UCS2"],
        title="Encoding",
        description="How an SMS text is encoded: GSM-7 where possible, else UCS-2",
    )
    response = schemas.get("DeliveryStatusResponse")
    if isinstance(response, Schema) and response.properties:
        response.properties["encoding"] = Schema(
            one_of=[Reference(_REF + "Encoding"), Schema(type=OpenAPIType.NULL)]
        )
    for schema in schemas.values():
        prop = (schema.properties or {}).get("channel") if isinstance(schema, Schema) else None
        if isinstance(prop, Schema) and prop.enum is not None:  # StatusQuery's: a string checked in code
            schema.properties["channel"] = Reference(_REF + "Channel")
    for _path, operation in _operations(document):
        for parameter in operation.parameters or []:
            if isinstance(parameter, Parameter) and parameter.name == "channel":
                parameter.schema = Reference(_REF + "Channel")


def _stats_schemas(schemas: Mapping[str, Any]) -> None:
    """GET /messages/stats: its times are date-times, its counts keyed by DeliveryStatus."""
    for name, props in (("StatsBucket", ("start", "end")), ("StatsPage", ("startDate", "endDate"))):
        schema = schemas.get(name)
        if isinstance(schema, Schema) and schema.properties:
            for prop in props:
                _set_format(schema.properties.get(prop), "date-time")
    channel_stats = schemas.get("ChannelStats")
    if isinstance(channel_stats, Schema) and channel_stats.properties:
        counts = channel_stats.properties.get("counts")
        if isinstance(counts, Schema):
            counts.property_names = Reference(_REF + "DeliveryStatus")
        _narrow(channel_stats.properties.get("deliveryRate"), minimum=0, maximum=1)
    page = schemas.get("StatsPage")
    if isinstance(page, Schema) and page.properties:
        bucket = page.properties.get("bucket")
        if isinstance(bucket, Schema):
            bucket.enum = list(BUCKETS)


# -- request bodies ----------------------------------------------------------------------------


def _send_constraints(schemas: Mapping[str, Any], channels: ChannelRegistry) -> None:
    text_maximum = {"SmsSendRequest": None, "WhatsAppSendRequest": sending.WHATSAPP_TEXT_MAX}
    text_maximum["RcsSendRequest"] = sending.RCS_TEXT_MAX
    for entry in channels:
        schema = schemas.get(entry.request_type.__name__)
        if not isinstance(schema, Schema) or not schema.properties:
            continue
        props = schema.properties
        _narrow(props.get("to"), pattern=E164_PATTERN)
        _narrow(props.get("reference"), min_length=1, max_length=sending.REFERENCE_MAX_LENGTH)
        _narrow(
            props.get("callbackUrl"),
            max_length=sending.CALLBACK_URL_MAX_LENGTH,
            format="uri",
            pattern="^https?://",
        )
        _narrow(
            props.get("validitySeconds"),
            minimum=entry.validity.minimum,
            maximum=entry.validity.maximum,
            default=entry.validity.default,
        )
        _narrow(
            props.get("text"),
            min_length=1,
            pattern=NOT_BLANK,
            max_length=text_maximum.get(schema.title or ""),
        )
    template = schemas.get("WhatsAppTemplate")
    if isinstance(template, Schema) and template.properties:
        parameters = template.properties.get("parameters")
        if isinstance(parameters, Schema):
            parameters.max_items = sending.WHATSAPP_TEMPLATE_PARAMETERS_MAX
            if isinstance(parameters.items, Schema):
                parameters.items.min_length = 1
                parameters.items.max_length = sending.WHATSAPP_TEMPLATE_PARAMETER_MAX


def _closed_objects(schemas: Mapping[str, Any], channels: ChannelRegistry) -> None:
    """`additionalProperties: false` on every body type that refuses unknown fields (all do)."""
    from partner_gateway.api.callbacks import CallbackSettingsUpdate
    from partner_gateway.api.schemas import StatusQuery

    roots: list[type[Any]] = [entry.request_type for entry in channels]
    roots += [StatusQuery, CallbackSettingsUpdate]
    for info in msgspec.inspect.multi_type_info(roots):
        for struct in _structs(info):
            schema = schemas.get(struct.cls.__name__)
            if isinstance(schema, Schema) and struct.forbid_unknown_fields:
                schema.additional_properties = False


def _structs(info: msgspec.inspect.Type) -> Iterator[msgspec.inspect.StructType]:
    """Every struct type inside `info` (its fields', a list's items, a union's members)."""
    seen: set[type[Any]] = set()
    stack = [info]
    while stack:
        current = stack.pop()
        if isinstance(current, msgspec.inspect.StructType):
            if current.cls in seen:
                continue
            seen.add(current.cls)
            yield current
            stack += [field.type for field in current.fields]
        elif isinstance(current, msgspec.inspect.UnionType):
            stack += list(current.types)
        elif isinstance(
            current, msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.FrozenSetType
        ):
            stack.append(current.item_type)


# Either field, never both and never neither (the channels' check() says so in words).
_EITHER: Final = {
    "WhatsAppSendRequest": ("text", "template", "WhatsAppTemplate"),
    "RcsSendRequest": ("text", "richCard", "RcsRichCard"),
}


def _one_content_kind(schemas: Mapping[str, Any]) -> None:
    for name, (text, other, other_ref) in _EITHER.items():
        schema = schemas.get(name)
        if not isinstance(schema, Schema):
            continue
        schema.one_of = [
            Schema(required=[text], properties={text: Schema(type=OpenAPIType.STRING)}),
            Schema(required=[other], properties={other: Reference(_REF + other_ref)}),
        ]


def _query_constraints(schemas: Mapping[str, Any], max_query_ids: int) -> None:
    update = schemas.get("CallbackSettingsUpdate")
    if isinstance(update, Schema) and update.properties:
        _narrow(
            update.properties.get("url"),
            max_length=sending.CALLBACK_URL_MAX_LENGTH,
            format="uri",
            pattern="^https?://",
        )
    query = schemas.get("StatusQuery")
    if isinstance(query, Schema) and query.properties:
        ids = query.properties.get("ids")
        if isinstance(ids, Schema):
            ids.min_items = 1
            ids.max_items = max_query_ids
            ids.items = Schema(type=OpenAPIType.STRING, min_length=1, pattern=NOT_BLANK)


def _narrow(schema: object, **constraints: Any) -> None:
    """Set constraints on a property's string or integer schema (inside a nullable oneOf too)."""
    if not isinstance(schema, Schema):
        return
    targets = [schema] if schema.one_of is None else [s for s in schema.one_of if isinstance(s, Schema)]
    for target in targets:
        if target.type == OpenAPIType.NULL:
            continue
        for name, value in constraints.items():
            if value is not None:
                setattr(target, name, value)


def _set_format(schema: object, format_: str) -> None:
    _narrow(schema, format=format_)


# -- parameters ----------------------------------------------------------------------------


def _parameters(path: str, operation: Operation) -> None:
    inbound = path.endswith(INBOUND_PATH)
    stats = operation.operation_id == "getMessageStats"
    for parameter in operation.parameters or []:
        if not isinstance(parameter, Parameter):
            continue
        if stats and parameter.name in ("startDate", "endDate"):
            parameter.required = True  # checked in the handler: its 400 names the missing one
        if inbound and parameter.name in ("from", "to"):
            # A user's number, or ours: a number, a short code, a WhatsApp number, an RBM agent id.
            parameter.schema = Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_NUMBER)
        elif parameter.name == "number" and parameter.param_in == "path":
            parameter.schema = Schema(type=OpenAPIType.STRING, pattern=E164_PATTERN)
        elif parameter.name == "limit":
            parameter.schema = Schema(
                type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_LIMIT, default=DEFAULT_LIMIT
            )
        elif parameter.name in ("startDate", "endDate"):
            parameter.schema = Schema(
                one_of=[
                    Schema(type=OpenAPIType.STRING, format="date-time"),  # type: ignore[arg-type]
                    Schema(type=OpenAPIType.STRING, format="date"),  # type: ignore[arg-type]
                ]
            )
        elif parameter.name == "deliveryStatus":
            statuses = "|".join(status.value for status in DeliveryStatus)
            parameter.schema = Schema(
                type=OpenAPIType.STRING, pattern=f"^({statuses})(,({statuses}))*$", examples=["ERROR,EXPIRED"]
            )
        elif parameter.name == "to":
            parameter.schema = Schema(type=OpenAPIType.STRING, pattern=E164_PATTERN)
        elif parameter.name == "bucket":
            parameter.schema = Schema(type=OpenAPIType.STRING, enum=list(BUCKETS), default="day")
        elif parameter.name == "Idempotency-Key":
            parameter.schema = Schema(
                type=OpenAPIType.STRING,
                min_length=1,
                max_length=IDEMPOTENCY_KEY_MAX,
                pattern="^[\\x20-\\x7e]+$",
            )
        elif parameter.name == "ids":
            parameter.schema = Schema(
                type=OpenAPIType.STRING, pattern="[^ ,]", examples=["msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1"]
            )


# -- responses -----------------------------------------------------------------------------


def _header(description: str, schema: Schema, required: bool = True) -> OpenAPIHeader:
    return OpenAPIHeader(schema=schema, description=description, required=required)


_RETRY_AFTER = _header("Seconds to wait before retrying", Schema(type=OpenAPIType.INTEGER, minimum=1))


def _problem_examples() -> dict[int, ProblemError]:
    """One real answer per status: made by the code that answers it."""
    return {
        400: invalid([("channel", "must be one of SMS, RCS, WHATSAPP")]),
        401: unauthorized("Send your API key as 'Authorization: Bearer <apiKey>'."),
        404: not_found("No SMS message with id 'msg_01JDX3Q7T0Z5K9R3B2M8N4P6W1'."),
        413: ProblemError(413, "body-too-large", "The request body is too large."),
        # Written by api/server.py before any handler runs, in these words and this title.
        414: ProblemError(
            414,
            "uri-too-long",
            f"The request target is longer than {MAX_REQUEST_TARGET} bytes; split the batch into several "
            "requests or use POST /partner-gateway/v1/messages/status/query.",
            title="URI Too Long",
        ),
        415: unsupported_media_type("text/plain"),
        422: to_problem(IdempotencyConflict()),
        429: ProblemError(
            429,
            "rate-limited",
            "Too many requests for this company; retry after the time in Retry-After.",
            title="Too many requests",
            headers={"Retry-After": "1"},
        ),
        500: ProblemError(
            500,
            "internal-error",
            "An unexpected error occurred. It has been logged; retry after a short delay.",
        ),
        503: ProblemError(
            503,
            "unavailable",
            "A service the gateway depends on is unavailable; retry after a short delay.",
        ),
    }


_PROBLEMS: Final = _problem_examples()


def _problem_response(status: int, problem: ProblemError) -> OpenAPIResponse:
    headers: dict[str, OpenAPIHeader | Reference] = {}
    if status == 401:
        headers["WWW-Authenticate"] = _header("Bearer", Schema(type=OpenAPIType.STRING))
    if status in (429, 500, 503):
        headers["Retry-After"] = _RETRY_AFTER
    if status == 429:
        headers["RateLimit-Policy"] = _header(
            "The company's limit (IETF rate-limit headers draft)", Schema(type=OpenAPIType.STRING), False
        )
        headers["RateLimit"] = _header("What is left of it", Schema(type=OpenAPIType.STRING), False)
    return OpenAPIResponse(
        description=problem.title,
        headers=headers or None,
        content={
            PROBLEM_MEDIA_TYPE: OpenAPIMediaType(
                schema=Reference(_REF + "Problem"),
                examples={
                    problem.slug: Example(summary=problem.title, value=msgspec.to_builtins(problem.problem()))
                },
            )
        },
    )


def _headers_and_problems(path: str, operation: Operation) -> None:
    responses = operation.responses if operation.responses is not None else {}
    operation.responses = responses
    examples = _PROBLEMS
    reads_body = operation.request_body is not None
    wanted = {status for status in (int(code) for code in responses if code.isdigit()) if status >= 400}
    wanted |= {429}
    if reads_body:
        wanted |= {400, 413, 415}
    for status in sorted(wanted):
        if status in examples:
            responses[str(status)] = _problem_response(status, examples[status])
    success = responses.get("202") or responses.get("200")
    if isinstance(success, OpenAPIResponse):
        headers: dict[str, OpenAPIHeader | Reference] = dict(success.headers or {})
        if "202" in responses:
            headers["Location"] = _header(
                "The URL of the message's status",
                Schema(type=OpenAPIType.STRING, format="uri-reference"),  # type: ignore[arg-type]
            )
            headers["Idempotent-Replayed"] = _header(
                "true when this is the stored answer to an earlier request with the same Idempotency-Key",
                Schema(type=OpenAPIType.STRING, enum=["true"]),
                required=False,
            )
        if path.endswith("/messages/history") or path.endswith(INBOUND_PATH):
            headers["Link"] = _header(
                'RFC 8288 `<...>; rel="next"` while there is a next page',
                Schema(type=OpenAPIType.STRING),
                False,
            )
        success.headers = headers or None
    if operation.operation_id == "putOptOut" and isinstance(success, OpenAPIResponse):
        added = OpenAPIResponse(description="Added to the list", content=success.content)
        responses["201"] = added
        success.description = "It was on the list already"


def _operations(document: OpenAPI) -> Iterator[tuple[str, Operation]]:
    for path, item in (document.paths or {}).items():
        for operation in (item.get, item.put, item.post, item.delete, item.patch):
            if operation is not None:
                yield path, operation
