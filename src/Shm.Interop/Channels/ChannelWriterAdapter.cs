using System;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A <see cref="SharedChannelWriter"/> as a System.Threading.Channels <see cref="ChannelWriter{T}"/>:
/// <see cref="WriteAsync"/> waits for room for its message, and <see cref="WaitToWriteAsync"/> for
/// room for the last message <see cref="TryWrite"/> refused, both parked on the process's futex
/// watcher. After <see cref="TryComplete"/>, <see cref="TryWrite"/> is false,
/// <see cref="WaitToWriteAsync"/> false, and a second <see cref="TryComplete"/> false, as for
/// <see cref="Channel{T}"/>.
/// </summary>
internal sealed class ChannelWriterAdapter(SharedChannelWriter writer) : ChannelWriter<ReadOnlyMemory<byte>>
{
    private int _refused;

    public override bool TryWrite(ReadOnlyMemory<byte> item)
    {
        if (writer.IsCompleted)
        {
            return false;
        }
        if (writer.TryWrite(item.Span))
        {
            _refused = 0;
            return true;
        }
        _refused = item.Length;
        return false;
    }

    public override async ValueTask<bool> WaitToWriteAsync(CancellationToken cancellationToken = default)
    {
        if (writer.IsCompleted)
        {
            return false;
        }
        try
        {
            await writer.WaitToWriteAsync(_refused, Deadline.Never, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ChannelClosedException)
        {
            return false;
        }
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> item, CancellationToken cancellationToken = default) =>
        writer.WriteAsync(item, cancellationToken);

    public override bool TryComplete(Exception? error = null)
    {
        if (writer.IsCompleted)
        {
            return false;
        }
        writer.Complete();
        return true;
    }
}
