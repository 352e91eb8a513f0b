using System;
using System.Collections.Generic;
using System.Globalization;
using System.Threading;
using Shm.TestSupport;
using Shm.Worker;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Channel peers in different time namespaces (<c>unshare --time</c>, CRIU-restored processes): each
/// reads every process's start time through /proc shifted by its own namespace's boot-time offset, so
/// unless both correct for it, a live peer looks like a later process with the same pid, dead.
/// </summary>
public sealed class ChannelTimeNamespaceTests : IDisposable
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>Seconds the peer's boot-time clock runs ahead.</summary>
    private const int Offset = 100_000;

    private readonly DevShm _shm = new();

    public void Dispose() => _shm.Dispose();

    /// <summary>
    /// A .NET worker, then a C program, in a time namespace 100,000 s ahead: each writes a message to
    /// this process's reader and stays attached, and meanwhile waits on this process as a silent reader
    /// (for room), tries to take that reader's place, and waits on this process as a silent writer.
    /// Nobody may be taken for dead: this process still sees the peer's writer alive after its message,
    /// and the peer saw all three of this process's endpoints alive.
    /// </summary>
    /// <remarks>
    /// Before the fix, channel peers compared start times as each read them: this process declared the
    /// peer's live writer dead once its message was read (the stream ended: ChannelClosedException
    /// naming it), and the peer took this process's silent reader and writer for dead (its write
    /// failed, the reader's place was taken over, its read ended).
    /// </remarks>
    [RootFact]
    public void A_channel_peer_in_another_time_namespace_is_not_taken_for_dead_nor_takes_this_process_for_dead()
    {
        string program = Sources.CompileC("timens-channel-peer", CPeer);
        var outcomes = new List<string>();
        foreach ((string who, string[] peer) in new[]
        {
            (".NET", Worker.InTimeNamespace(Offset, "timens-channel-peer", "@NAME")),
            ("C", new[] { "--time", "--boottime", Offset.ToString(CultureInfo.InvariantCulture), program, "@NAME" }),
        })
        {
            string name = _shm.UniqueName();
            using var region = SharedRegion.CreateNamed(name, TimeNamespacePeer.Length);
            using var fromPeer = SharedChannel.Create(region, 0, 4096);
            using var silentlyRead = SharedChannel.Create(region, TimeNamespacePeer.ChannelSize, 4096);
            using var silentlyWritten = SharedChannel.Create(region, 2 * TimeNamespacePeer.ChannelSize, 4096);
            using SharedChannelReader reader = fromPeer.OpenReader();
            using SharedChannelReader silentReader = silentlyRead.OpenReader();
            using SharedChannelWriter silentWriter = silentlyWritten.OpenWriter();

            using Child child = Child.Spawn("unshare", Array.ConvertAll(peer, argument => argument == "@NAME" ? "/" + name : argument));
            string seen;
            try
            {
                Assert.True(SpinWait.SpinUntil(() => region.Read<int>(TimeNamespacePeer.HandshakeOffset) == 1 || child.Exit is not null, Bound),
                    $"the {who} peer never wrote: {Native.Describe(child.Pid)}");
                seen = Read(reader);
            }
            finally
            {
                region.Write(TimeNamespacePeer.HandshakeOffset, 2);
            }
            ChildExit exit = child.WaitOrFail(Bound);
            outcomes.Add($"{who} peer: its writer {seen}; it saw this process's endpoints {(exit.Succeeded ? "alive" : $"taken for dead ({exit})")}");
        }

        Assert.True(outcomes.TrueForAll(outcome => outcome.EndsWith("its writer alive; it saw this process's endpoints alive", StringComparison.Ordinal)), string.Join("; ", outcomes));
    }

    /// <summary>The peer's message, then half a second in which its live writer must not end the stream.</summary>
    private static string Read(SharedChannelReader reader)
    {
        try
        {
            if (!reader.TryRead(out ReceivedMessage message, Bound, CancellationToken.None))
            {
                return "sent nothing";
            }
            message.Dispose();
            return reader.TryRead(out ReceivedMessage more, TimeSpan.FromMilliseconds(500), CancellationToken.None)
                ? "sent a second message"
                : reader.DeadWriters.Count == 0 ? "alive" : "dead";
        }
        catch (System.Threading.Channels.ChannelClosedException closed)
        {
            return closed.Message;
        }
    }

    /// <summary>The worker's TimeNamespacePeer in C, through shm.h: argv = segment; exit 0 if this process's endpoints all looked alive.</summary>
    private const string CPeer = """
        #include <shm/shm.h>
        #include <fcntl.h>
        #include <sys/mman.h>
        #include <sys/stat.h>

        int main(int argc, char **argv)
        {
            if (argc != 2) return 2;
            int fd = shm_open(argv[1], O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); return 2; }
            struct stat st;
            fstat(fd, &st);
            char *base = (char *)mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); return 2; }
            size_t each = (size_t)shm_channel_required_length(4096, 1);
            volatile int *handshake = (volatile int *)(base + 3 * each);
            struct shm_channel to_test, with_silent_reader, with_silent_writer;
            if (shm_channel_open(&to_test, base, each) != 0 || shm_channel_open(&with_silent_reader, base + each, each) != 0 ||
                shm_channel_open(&with_silent_writer, base + 2 * each, each) != 0) { fprintf(stderr, "not channels\n"); return 3; }
            static unsigned char bytes[500];
            struct shm_channel_writer writer;
            if (shm_channel_writer_attach(&writer, &with_silent_reader) < 0) return 4;
            while (shm_channel_try_write(&writer, bytes, sizeof bytes) == 0) {}
            int reader = shm_channel_write(&writer, bytes, sizeof bytes, 300);
            shm_channel_complete(&writer);
            struct shm_channel_reader place;
            int taken = shm_channel_reader_attach(&place, &with_silent_reader);
            if (taken == 0) shm_channel_reader_detach(&place);
            struct shm_channel_reader silent;
            if (shm_channel_reader_attach(&silent, &with_silent_writer) != 0) return 5;
            long silent_writer = shm_channel_read(&silent, bytes, sizeof bytes, 300);
            shm_channel_reader_detach(&silent);
            struct shm_channel_writer mine;
            if (shm_channel_writer_attach(&mine, &to_test) < 0) return 6;
            if (shm_channel_try_write(&mine, "hello", 5) != 0) return 7;
            *handshake = 1;
            for (int64_t until = shm_now_ms() + 60000; *handshake != 2 && shm_now_ms() < until;) usleep(1000);
            shm_channel_complete(&mine);
            printf("the test's silent reader: %d; its reader's place: %d; its silent writer: %ld\n", reader, taken, silent_writer);
            return reader == SHM_CH_ETIMEDOUT && taken == SHM_CH_EBUSY && silent_writer == SHM_CH_ETIMEDOUT ? 0 : 1;
        }
        """;
}
