using System;
using System.Threading;
using System.Threading.Channels;
using System.Threading.Tasks;

namespace Shm.Interop;

/// <summary>
/// A <see cref="SharedChannelReader"/> as a System.Threading.Channels <see cref="ChannelReader{T}"/>
/// (messages copied into arrays). <see cref="Completion"/> completes (or faults, naming the writers
/// that died) as soon as the stream ended and its last message was taken: in the <see cref="TryRead"/>
/// that took it or found nothing, or in <see cref="WaitToReadAsync"/>.
/// </summary>
internal sealed class ChannelReaderAdapter(SharedChannelReader reader) : ChannelReader<byte[]>
{
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override Task Completion => _completion.Task;

    public override bool TryRead(out byte[] item)
    {
        try
        {
            if (reader.TryRead(out ReceivedMessage message))
            {
                using (message)
                {
                    item = message.ToArray();
                }
                CompleteIfEnded();
                return true;
            }
            CompleteIfEnded();
        }
        catch (SharedMemoryCorruptedException corrupted)
        {
            _completion.TrySetException(corrupted);
            throw;
        }
        item = [];
        return false;
    }

    public override async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            bool more = await reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false);
            if (!more)
            {
                _completion.TrySetResult();
            }
            return more;
        }
        catch (Exception ended) when (ended is ChannelClosedException or SharedMemoryCorruptedException)
        {
            _completion.TrySetException(ended);
            throw;
        }
    }

    // Only once nothing is left: a completed writer's lane needs no /proc read; a live one's is asked at most every 50 ms.
    private void CompleteIfEnded()
    {
        if (!_completion.Task.IsCompleted && !reader.HasMessage() && reader.CheckEnded(force: false))
        {
            _ = reader.WritersDied ? _completion.TrySetException(reader.Ended()) : _completion.TrySetResult();
        }
    }
}
