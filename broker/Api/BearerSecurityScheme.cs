using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace HalfMsgBroker.Api;

/// <summary>
/// Declares the API key as an HTTP bearer scheme for every operation, so the OpenAPI document says how
/// to authenticate and the reference page at <c>/scalar</c> offers a box for the key.
/// </summary>
internal sealed class BearerSecurityScheme : IOpenApiDocumentTransformer
{
    private const string Name = "apiKey";

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.AddComponent<IOpenApiSecurityScheme>(Name, new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "An API key of the broker (Authorization: Bearer <key>); loopback callers need none in Protected mode.",
        });
        document.Security = [new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Name, document)] = [] }];
        return Task.CompletedTask;
    }
}
