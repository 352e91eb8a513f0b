using System;

namespace Shm.Interop;

/// <summary>One response to a request, copied out of the service: this process's own bytes.</summary>
public sealed class Response
{
    private readonly byte[] _bytes;

    internal Response(long requestId, byte[] bytes)
    {
        RequestId = requestId;
        _bytes = bytes;
    }

    /// <summary>The id of the request it answers (checked against the request's own when it was received).</summary>
    public long RequestId { get; }

    /// <summary>The response's bytes.</summary>
    public ReadOnlySpan<byte> Span => _bytes;

    /// <summary>The response's bytes.</summary>
    public ReadOnlyMemory<byte> Memory => _bytes;

    /// <summary>Its length in bytes.</summary>
    public int Length => _bytes.Length;
}
