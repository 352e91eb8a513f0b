using System;
using System.Text;
using System.Threading;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>
/// Request-response against a hostile peer: this process writes chosen bad values into the service's
/// segment (as any process that maps it may) between the steps of a forked victim (a client or a
/// server) whose mapping ends at a PROT_NONE page. Each victim must end normally, within its bound,
/// having reported the corruption with <see cref="SharedMemoryCorruptedException"/> naming the structure.
/// </summary>
public sealed class RequestResponseHostilePeerTests : IDisposable
{
    public const int Corrupted = 42, TimedOut = 44, Completed = 45, OtherException = 47;

    // The documented layout (RequestResponseLayout.cs), written again here.
    private const int ServerSlots = 8192, SlotBytes = 64, Word = 0, RequestId = 8, RequestLength = 16, ResponseHead = 20, ResponseTail = 24, RequestBytes = 64;
    private const int MaxClientsAt = 64;

    private static readonly RequestResponseConfig Config = new() { MaxClients = 2, MaxServers = 2, MaxRequestBytes = 64, MaxResponseBytes = 64, QueueDepth = 2, ResponseDepth = 2 };
    private static readonly TimeSpan Each = TimeSpan.FromSeconds(2);

    private readonly ServiceNames _names = new();

    /// <summary>Runs each kind of victim once here, clean and corrupted, so that nothing compiles in a forked child.</summary>
    public RequestResponseHostilePeerTests()
    {
        Assert.Equal(Completed, Face("clean client", inProcess: true).Exit);
        Assert.Equal(Completed, Face("clean server", inProcess: true).Exit);
        Assert.Equal(Corrupted, Face("response request id", inProcess: true).Exit);
        Assert.Equal(Corrupted, Face("request length", inProcess: true).Exit);
    }

    public void Dispose() => _names.Dispose();

    private enum Victim
    {
        Opener,
        Client,
        Server,
    }

    public static TheoryData<string> Table => ["response ring head", "response request id", "response length", "request slot word", "request length", "request-response client slot owner", "response ring tail", "request-response configuration MaxClients"];

    [Theory]
    [MemberData(nameof(Table))]
    public void A_forked_victim_reports_the_corruption_and_ends_normally(string structure)
    {
        (int? signal, int? exit, string report) = Face(structure, inProcess: false);
        Assert.True(signal is null, $"the victim died of signal {signal}: {report}");
        Assert.True(exit == Corrupted, $"exit {exit}: {report}");
        Assert.Equal($"{nameof(SharedMemoryCorruptedException)}: {structure}", report);
    }

    [Fact]
    public void Clean_victims_complete_so_the_table_tests_the_corruption_and_nothing_else()
    {
        Assert.Equal(Completed, Face("clean client", inProcess: false).Exit);
        Assert.Equal(Completed, Face("clean server", inProcess: false).Exit);
    }

    /// <summary>The scene for <paramref name="structure"/>: the victim, and what this process does before its first step and between its two.</summary>
    private static (Victim Victim, Action<Scene> Before, Action<Scene> Between) SceneOf(string structure) => structure switch
    {
        "clean client" => (Victim.Client, _ => { }, s => s.TakeAndAnswer()),
        "clean server" => (Victim.Server, s => s.Send(), _ => { }),
        "response ring head" => (Victim.Client, _ => { }, s => s.TakeThen(at => s.Bytes.Write(at + ResponseHead, (uint)Config.ResponseDepth + 1))),
        "response request id" => (Victim.Client, _ => { }, s => s.TakeThen(at => s.Respond(at, 999, 3))),
        "response length" => (Victim.Client, _ => { }, s => s.TakeThen(at => s.Respond(at, s.Bytes.Read<long>(at + RequestId), Config.MaxResponseBytes + 1))),
        "request slot word" => (Victim.Client, _ => { }, s => s.Bytes.Write(s.Slot(0) + Word, 0xFF00_0000_0000_0001UL)),
        "request length" => (Victim.Server, s => { s.Send(); s.Bytes.Write(s.Slot(0) + RequestLength, 1 << 30); }, _ => { }),
        "request-response client slot owner" => (Victim.Server, s => { s.Send(); s.Bytes.Write(s.ClientSlots, 0x0700_0001_0000_0000UL); }, _ => { }),
        "response ring tail" => (Victim.Server, s => s.Send(), s => s.Bytes.Write(s.Slot(0) + ResponseTail, 7u)),
        "request-response configuration MaxClients" => (Victim.Opener, s => s.Bytes.Write(MaxClientsAt, 0), _ => { }),
        _ => throw new ArgumentOutOfRangeException(nameof(structure), structure, "no such scene"),
    };

    /// <summary>Sets the scene, runs the victim (forked, or here on a thread), and says how it ended.</summary>
    private (int? Signal, int? Exit, string Report) Face(string structure, bool inProcess)
    {
        (Victim victim, Action<Scene> before, Action<Scene> between) = SceneOf(structure);
        using var scene = new Scene(_names.Unique());
        if (victim == Victim.Opener)
        {
            before(scene);
        }
        int Body() => scene.Run(victim);
        using Child? child = inProcess ? null : Child.Fork(Body);
        System.Threading.Tasks.Task<int>? thread = inProcess ? System.Threading.Tasks.Task.Run(Body) : null;
        if (victim != Victim.Opener)
        {
            Assert.True(scene.Ready.TryWait(Waits.Bound), "the victim did not start");
            before(scene);
            scene.Go.Set();
            Assert.True(scene.Ready.TryWait(Waits.Bound) || scene.Report.Length > 0, "the victim did not take its first step");
            between(scene);
            scene.Go.Set();
        }
        if (child is not null)
        {
            ChildExit exit = child.WaitOrFail();
            return (exit.Signal, exit.ExitCode, scene.Report);
        }
        Assert.True(thread!.Wait(Waits.Bound));
        return (null, thread.Result, scene.Report);
    }

    /// <summary>A service, its bytes as a peer maps them, this process's own client or server in it, and the control region the victim reports through.</summary>
    private sealed class Scene : IDisposable
    {
        private const int ReportAt = 1024, ReportLength = 1024;
        private Client? _client;
        private Server? _server;
        private PendingResponse? _pending;
        private ActiveRequest? _held;

        public Scene(string name)
        {
            Name = name;
            Service = RequestResponseService.Create(name, Config);
            Bytes = SharedRegion.OpenNamed(global::Shm.Interop.Service.SegmentPrefix + name);
            ClientSlots = ServerSlots + (Config.MaxServers * SlotBytes);
            long requests = ClientSlots + (Config.MaxClients * SlotBytes);
            Stride = RequestBytes + Align64(Config.MaxRequestBytes) + (Config.ResponseDepth * Align64(16 + Config.MaxResponseBytes));
            Requests = requests;
            Assert.Equal((requests + (Config.MaxClients * Config.QueueDepth * Stride) + 4095) & ~4095L, Bytes.Length); // the documented layout is the one in the segment
            Control = SharedRegion.CreateAnonymous(4096);
            Ready = SharedEvent.Create(Control, 0, EventResetMode.AutoReset);
            Go = SharedEvent.Create(Control, 64, EventResetMode.AutoReset);
        }

        public string Name { get; }

        public RequestResponseService Service { get; }

        public SharedRegion Bytes { get; }

        public long ClientSlots { get; }

        private long Requests { get; }

        private long Stride { get; }

        public SharedRegion Control { get; }

        public SharedEvent Ready { get; }

        public SharedEvent Go { get; }

        public string Report
        {
            get
            {
                ReadOnlySpan<byte> bytes = Control.AsReadOnlySpan(ReportAt, ReportLength);
                int end = bytes.IndexOf((byte)0);
                return Encoding.UTF8.GetString(end < 0 ? bytes : bytes[..end]);
            }
        }

        /// <summary>Request slot <paramref name="i"/> of client slot 0 (the first client to attach).</summary>
        public long Slot(int i) => Requests + (i * Stride);

        /// <summary>This process, as client slot 0, sends a request.</summary>
        public void Send()
        {
            _client ??= Service.CreateClient();
            _pending = _client.Send("request"u8);
        }

        /// <summary>This process, as a server, takes the victim's request and answers it properly.</summary>
        public void TakeAndAnswer()
        {
            _server ??= Service.CreateServer();
            Assert.True(_server.TryReceive(out ActiveRequest? request, Waits.Bound));
            using (request)
            {
                request.Respond("answer"u8);
                request.Complete();
            }
        }

        /// <summary>This process, as a server, takes the victim's request and then writes into its slot.</summary>
        public void TakeThen(Action<long> corrupt)
        {
            _server ??= Service.CreateServer();
            Assert.True(_server.TryReceive(out _held, Waits.Bound)); // held, neither answered nor completed: the corruption is the answer
            corrupt(Slot(0));
        }

        /// <summary>Writes a response entry at the ring's first place, as a server would, and moves the head.</summary>
        public void Respond(long slot, long id, int length)
        {
            long entry = slot + RequestBytes + Align64(Config.MaxRequestBytes);
            Bytes.Write(entry, id);
            Bytes.Write(entry + 8, length);
            Bytes.Write(slot + ResponseHead, 1u);
        }

        /// <summary>The victim: opens the service with a guard page, then takes its two steps, each after Go; its outcome as an exit code.</summary>
        public int Run(Victim victim)
        {
            try
            {
                AppContext.SetSwitch("Shm.Interop.Services.GuardPage", true);
                using var service = RequestResponseService.Open(Name);
                return victim switch
                {
                    Victim.Opener => Completed,
                    Victim.Client => AsClient(service),
                    _ => AsServer(service),
                };
            }
            catch (SharedMemoryCorruptedException corrupted)
            {
                Record($"{nameof(SharedMemoryCorruptedException)}: {corrupted.Structure}");
                return Corrupted;
            }
            catch (Exception other)
            {
                Record($"{other.GetType().Name}: {other.Message}");
                return OtherException;
            }
        }

        private int AsClient(RequestResponseService service)
        {
            using Client client = service.CreateClient();
            Ready.Set();
            Go.TryWait(Waits.Bound);
            using PendingResponse pending = client.Send("hello"u8);
            Ready.Set();
            Go.TryWait(Waits.Bound);
            if (!pending.TryReceive(out Response? response, Each))
            {
                return TimedOut;
            }
            return response.Span.SequenceEqual("answer"u8) && !pending.TryReceive(out _, Each) && pending.IsCompleted ? Completed : OtherException;
        }

        private int AsServer(RequestResponseService service)
        {
            using Server server = service.CreateServer();
            Ready.Set();
            Go.TryWait(Waits.Bound);
            if (!server.TryReceive(out ActiveRequest? request, Each))
            {
                return TimedOut;
            }
            using (request)
            {
                Ready.Set();
                Go.TryWait(Waits.Bound);
                request.Respond("answer"u8);
                request.Complete();
            }
            return Completed;
        }

        private void Record(string text)
        {
            Span<byte> report = Control.AsSpan(ReportAt, ReportLength);
            report.Clear();
            byte[] bytes = Encoding.UTF8.GetBytes(text);
            bytes.AsSpan(0, Math.Min(bytes.Length, ReportLength - 1)).CopyTo(report);
            Ready.Set(); // a victim that stops early still lets the test go on
        }

        private static long Align64(long value) => (value + 63) & ~63L;

        public void Dispose()
        {
            _pending?.Dispose();
            _held?.Dispose();
            _client?.Dispose();
            _server?.Dispose();
            Ready.Dispose();
            Go.Dispose();
            Control.Dispose();
            Bytes.Dispose();
            Service.Dispose();
        }
    }
}
