using System.IO;
using Shm.TestSupport;
using Xunit;

namespace Shm.Interop.Tests;

/// <summary>C programs the tests compile with the machine's cc against include/shm/shm.h.</summary>
internal static class Sources
{
    public static string CompileC(string name, string source)
    {
        string directory = Directory.CreateTempSubdirectory("shm-c-").FullName;
        string file = Path.Combine(directory, name + ".c");
        string program = Path.Combine(directory, name);
        File.WriteAllText(file, source);
        using Child cc = Child.Spawn("cc", ["-O2", "-Wall", "-Werror", "-pthread", "-I", Repository.PathOf("include"), "-o", program, file]);
        Assert.True(cc.WaitOrFail().Succeeded, "cc failed: a C compiler is needed for this test");
        return program;
    }


    /// <summary>ChannelTests.MessageOf, in C.</summary>
    private const string MessageOf = """
        #include <shm/shm.h>
        #include <fcntl.h>
        #include <sys/mman.h>
        #include <sys/stat.h>

        static uint32_t message_of(int writer, int index, unsigned char *bytes)
        {
            uint32_t length = 8 + ((index * 37) + (writer * 11)) % 3000;
            memcpy(bytes, &writer, 4);
            memcpy(bytes + 4, &index, 4);
            for (uint32_t i = 8; i < length; i++) bytes[i] = (unsigned char)(index + i);
            return length;
        }

        static char *channel_at(const char *name, long offset)
        {
            int fd = shm_open(name, O_RDWR, 0);
            if (fd < 0) { perror("shm_open"); exit(2); }
            struct stat st;
            fstat(fd, &st);
            char *base = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (base == MAP_FAILED) { perror("mmap"); exit(2); }
            char *channel = base + offset;
            if (!shm_is_ready((struct shm_header *)channel, SHM_CHANNEL)) { fprintf(stderr, "not a ready channel\n"); exit(3); }
            return channel;
        }

        """;

    /// <summary>Writes messages 0..N-1 of writer 2: argv = name offset N.</summary>
    public const string CWriter = MessageOf + """
        int main(int argc, char **argv)
        {
            char *channel = channel_at(argv[1], atol(argv[2]));
            int lane = shm_channel_attach_writer(channel);
            if (lane < 0) { fprintf(stderr, "no free lane\n"); return 4; }
            static unsigned char bytes[4096];
            for (int i = 0, n = atoi(argv[3]); i < n; i++) {
                uint32_t length = message_of(2, i, bytes);
                if (shm_channel_write(channel, lane, bytes, length) != 0) return 5;
            }
            shm_channel_complete(channel, lane);
            return 0;
        }
        """;

    /// <summary>Reads and checks messages 0..N-1 of writer 1, then the end: argv = name offset N.</summary>
    public const string CReader = MessageOf + """
        int main(int argc, char **argv)
        {
            char *channel = channel_at(argv[1], atol(argv[2]));
            if (shm_channel_attach_reader(channel) != 0) { fprintf(stderr, "another reader\n"); return 4; }
            static unsigned char got[4096], want[4096];
            int n = atoi(argv[3]);
            for (int i = 0; i < n; i++) {
                long length = shm_channel_read(channel, got, sizeof got);
                uint32_t expected = message_of(1, i, want);
                if (length != (long)expected || memcmp(got, want, expected) != 0) { fprintf(stderr, "message %d wrong (%ld bytes)\n", i, length); return 6; }
            }
            return shm_channel_read(channel, got, sizeof got) == -1 ? 0 : 7;
        }
        """;
}
