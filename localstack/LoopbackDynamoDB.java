// Starts DynamoDB Local bound to loopback only. DynamoDB Local has no host
// option: its ServerRunner builds a Jetty server with `new Server(port)`,
// which listens on every interface. This launcher builds the same server from
// the same command-line arguments, sets the host of each network connector to
// 127.0.0.1 before the server starts, and starts it, so DynamoDB Local follows
// the project's "everything listens on 127.0.0.1" rule.
//
// It prints "LoopbackDynamoDB: listening on 127.0.0.1" once bound. When the
// jar's classes no longer look as expected it exits with status 3 and a line
// starting "LoopbackDynamoDB: cannot bind to loopback", and the caller falls
// back to the plain jar start (internal/local/emulator).
import java.lang.reflect.Field;
import java.lang.reflect.Method;

public class LoopbackDynamoDB {
    static final String HOST = "127.0.0.1";

    public static void main(String[] args) throws Exception {
        Object proxy;
        Object jetty;
        try {
            Class<?> runner = Class.forName("com.amazonaws.services.dynamodbv2.local.main.ServerRunner");
            Method create = runner.getMethod("createServerFromCommandLineArgs", String[].class);
            proxy = create.invoke(null, (Object) args);
            Field f = proxy.getClass().getDeclaredField("server");
            f.setAccessible(true);
            jetty = f.get(proxy);
            int set = 0;
            for (Object c : (Object[]) jetty.getClass().getMethod("getConnectors").invoke(jetty)) {
                Class<?> nc = Class.forName("org.eclipse.jetty.server.NetworkConnector", false, c.getClass().getClassLoader());
                if (nc.isInstance(c)) {
                    c.getClass().getMethod("setHost", String.class).invoke(c, HOST);
                    set++;
                }
            }
            if (set == 0) {
                throw new IllegalStateException("the Jetty server has no network connector");
            }
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            System.err.println("LoopbackDynamoDB: cannot bind to loopback: " + e);
            System.exit(3);
            return;
        }
        proxy.getClass().getMethod("start").invoke(proxy);
        System.err.println("LoopbackDynamoDB: listening on " + HOST);
        proxy.getClass().getMethod("join").invoke(proxy);
    }
}
