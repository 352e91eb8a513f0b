using System;
using System.Globalization;
using System.Linq;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>The blackboard section of include/shm/shm.h: it compiles strictly, C reads what .NET writes and .NET reads what C writes, never torn.</summary>
public sealed class BlackboardCTests : IDisposable
{
    private const string Prelude = """
        #ifndef _GNU_SOURCE
        #define _GNU_SOURCE
        #endif
        #include <shm/shm.h>

        /* Board64 of the .NET tests: eight fields derived from the index. */
        struct board64 { int64_t index, a, b, c, d, e, f, g; };

        static inline struct board64 board_of(int64_t i)
        {
            struct board64 v = {i, i * 3, ~i, i ^ 0x5555555555555555ll, i + 7, i * -11, (int64_t)((uint64_t)i * 0x9E3779B97F4A7C15ull), i - 1000000007};
            return v;
        }

        static inline int agrees(const struct board64 *v)
        {
            struct board64 want = board_of(v->index);
            return memcmp(v, &want, sizeof want) == 0;
        }

        static inline int open_board(struct shm_blackboard *b, const char *name)
        {
            int error = shm_blackboard_open(b, name);
            if (error != 0) fprintf(stderr, "shm_blackboard_open: %d\n", error);
            return error;
        }

        """;

    /// <summary>argv: name, last. Reads entry 0 until it holds index last; exit 0 if no value was torn or went back.</summary>
    private const string CReader = Prelude + """
        int main(int argc, char **argv)
        {
            struct shm_blackboard board;
            struct board64 value;
            int64_t last = atoll(argv[2]), previous = -1, reads = 0;
            (void)argc;
            if (open_board(&board, argv[1]) != 0) return 2;
            if (shm_blackboard_read(&board, 0, &value, 8, 0) != -EINVAL || shm_blackboard_read(&board, 2, &value, sizeof value, 0) != -EINVAL) return 3;
            while (previous != last) {
                int error = shm_blackboard_read(&board, 0, &value, sizeof value, 30000000000ll);
                if (error != 0) { fprintf(stderr, "read: %d\n", error); return 4; }
                if (!agrees(&value)) { fprintf(stderr, "torn at %lld\n", (long long)value.index); return 5; }
                if (value.index < previous) { fprintf(stderr, "went back to %lld\n", (long long)value.index); return 6; }
                previous = value.index;
                reads++;
            }
            shm_blackboard_close(&board);
            printf("%lld\n", (long long)reads);
            return 0;
        }
        """;

    /// <summary>argv: name, last. Attaches as the writer, writes indexes 1..last to entry 0, then 99 to entry 1.</summary>
    private const string CWriter = Prelude + """
        int main(int argc, char **argv)
        {
            struct shm_blackboard board;
            int64_t last = atoll(argv[2]);
            (void)argc;
            if (open_board(&board, argv[1]) != 0) return 2;
            int error = shm_blackboard_writer_attach(&board);
            if (error != 0) { fprintf(stderr, "attach: %d\n", error); return 3; }
            for (int64_t i = 1; i <= last; i++) {
                struct board64 value = board_of(i);
                if (shm_blackboard_write(&board, 0, &value, sizeof value) != 0) return 4;
            }
            struct board64 done = board_of(99);
            if (shm_blackboard_write(&board, 1, &done, sizeof done) != 0) return 5;
            shm_blackboard_close(&board);
            return 0;
        }
        """;

    private readonly ServiceNames _names = new();

    public void Dispose() => _names.Dispose();

    [Theory]
    [InlineData("cc", "-std=c11 -Wextra")]
    [InlineData("g++", "-std=c++17 -Wextra")]
    public void The_blackboard_section_compiles_strictly(string compiler, string flags) =>
        Assert.True(System.IO.File.Exists(Sources.CompileC("bb-writer", CWriter, compiler, flags)));

    [Fact]
    public void A_C_reader_never_sees_a_torn_value_of_a_dotnet_writer()
    {
        const long last = 300_000;
        string name = _names.Unique();
        using var service = BlackboardService.Create(name, new BlackboardConfig { Keys = 2, ValueSize = 64 });
        using BlackboardWriter writer = service.CreateWriter();
        writer.Write(0, Board64.Of(0));
        string program = Sources.CompileC("bb-reader", CReader, flags: Sources.StrictC);

        using Child reader = Child.Spawn(program, [name, last.ToString(CultureInfo.InvariantCulture)]);
        for (long i = 1; i <= last; i++)
        {
            writer.Write(0, Board64.Of(i));
        }

        ChildExit exit = reader.WaitOrFail();
        Assert.Equal(0, exit.ExitCode);
    }

    [Fact]
    public void A_dotnet_reader_never_sees_a_torn_value_of_a_C_writer()
    {
        const long last = 300_000;
        string name = _names.Unique();
        using var service = BlackboardService.Create(name, new BlackboardConfig { Keys = 2, ValueSize = 64 });
        string program = Sources.CompileC("bb-writer", CWriter, flags: Sources.StrictC);

        using Child writer = Child.Spawn(program, [name, last.ToString(CultureInfo.InvariantCulture)]);
        long previous = -1;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (previous != last)
        {
            Assert.True(clock.Elapsed < Waits.Bound, $"the C writer never wrote {last} (last read {previous})");
            Assert.True(service.TryRead(0, out Board64 value, Waits.Bound));
            if (value.Equals(default(Board64)))
            {
                continue; // not written yet
            }
            Assert.True(value.Agrees, $"torn value at {value.Index}");
            Assert.True(value.Index >= previous, $"went back from {previous} to {value.Index}");
            previous = value.Index;
        }

        Assert.Equal(0, writer.WaitOrFail().ExitCode);
        Assert.Equal(Board64.Of(99), service.Read<Board64>(1));
        Assert.DoesNotContain(Service.List().Single(s => s.Name == name).Participants, p => p.Role == ParticipantRole.Writer);
        using BlackboardWriter next = service.CreateWriter(); // the C writer gave its slot back
    }
}
